import { test, expect, waitForHydration, signIn } from './fixtures';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RELEASE, SITE_ROOT, useServer } from './support/server';

/** The main wasm module on disk, or its precompressed copy for a content encoding. */
function wasmFile(encoding?: 'br' | 'gzip'): string {
  const suffix = encoding === undefined ? '' : encoding === 'br' ? '.br' : '.gz';
  return join(SITE_ROOT, 'pkg', `pfa-sync.wasm${suffix}`);
}

useServer();

test('the start page is server-rendered, then hydrates and reacts to a click', async ({ page, request }) => {
  // Server-rendered: the HTML itself (before any script runs) carries the content.
  const html = await (await request.get('/')).text();
  expect(html).toContain('PFA Sync');
  expect(html).toContain('Not checked yet.');

  await page.goto('/');
  await expect(page.getByRole('heading', { level: 1, name: 'PFA Sync' })).toBeVisible();
  await waitForHydration(page);

  // Hydrated: a click runs Rust in the browser, which fetches /health and shows the answer.
  const result = page.getByTestId('health-result');
  await expect(result).toHaveText('Not checked yet.');
  await page.getByTestId('check-health').click();
  await expect(result).toHaveAttribute('data-checks', '1');
  await expect(result).toContainText('Server ok · database ok');
});

test('the wasm bundle is served compressed', async ({ request }) => {
  for (const encoding of ['br', 'gzip'] as const) {
    const response = await request.get('/pkg/pfa-sync.wasm', { headers: { 'accept-encoding': encoding } });
    expect(response.status()).toBe(200);
    expect(response.headers()['content-encoding']).toBe(encoding);
    expect(response.headers()['content-type']).toBe('application/wasm');
    // Whichever way it was compressed, it decodes to the module on disk.
    expect(Buffer.compare(await response.body(), readFileSync(wasmFile()))).toBe(0);
    if (RELEASE) {
      // `make site-release` precompressed it: the server sends that copy as it is.
      expect(Number(response.headers()['content-length'])).toBe(statSync(wasmFile(encoding)).size);
    }
  }
});

/** The main module as a browser receives it (brotli), in bytes. */
const MAIN_MODULE_BUDGET = 300_000;

test('the browser downloads the release bundle as its precompressed copy, within its size budget, and hydrates with it', async ({ page, consoleErrors }) => {
  test.skip(!RELEASE, 'only the release site is precompressed');
  const wasm = page.waitForResponse((response) => new URL(response.url()).pathname === '/pkg/pfa-sync.wasm');
  await page.goto('/');
  const response = await wasm;
  // Chromium offers brotli (on loopback over plain HTTP too: "gzip, deflate, br, zstd").
  const accepted = (await response.request().headerValue('accept-encoding')) ?? '';
  const encoding = /\bbr\b/.test(accepted) ? 'br' : 'gzip';
  expect(await response.headerValue('content-encoding')).toBe(encoding);
  const sizes = await response.request().sizes();
  expect(sizes.responseBodySize).toBe(statSync(wasmFile(encoding)).size);
  // The size budget of the main module as the browser receives it.
  const sent = sizes.responseBodySize;
  console.log(`main module as sent (${encoding}): ${sent.toLocaleString('en')} bytes, budget ${MAIN_MODULE_BUDGET.toLocaleString('en')}`);
  test.info().annotations.push({ type: 'main module', description: `${sent} bytes (${encoding})` });
  expect(sent, `the main module is ${sent} bytes as sent (${encoding})`).toBeLessThan(MAIN_MODULE_BUDGET);
  await waitForHydration(page);
  await page.getByTestId('check-health').click();
  await expect(page.getByTestId('health-result')).toContainText('Server ok · database ok');
  expect(consoleErrors).toEqual([]);
});

test('the other pages are lazy modules: the records page loads without them', async ({ page }) => {
  const wasm: string[] = [];
  page.on('requestfinished', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.endsWith('.wasm')) wasm.push(path);
  });
  const lazyModules = () => wasm.filter((path) => path !== '/pkg/pfa-sync.wasm');

  // The sign-in page and the organization picker it leads to fetch their own modules.
  await signIn(page, 'planner');
  await expect(page.getByTestId('me-username')).toHaveText('planner');
  expect(wasm).toContain('/pkg/pfa-sync.wasm');
  await expect.poll(() => lazyModules().filter((path) => /(login|orgs)_route/.test(path)).length).toBe(2);

  // The records page hydrates with the main module alone.
  wasm.length = 0;
  await page.goto('/orgs/org-rio');
  await waitForHydration(page);
  await expect(page.getByTestId('record-count')).toHaveText('2000 records');
  expect(wasm).toEqual(['/pkg/pfa-sync.wasm']);

  // Following a link to the sync queue fetches its module, then the page works (live socket).
  await page.getByRole('link', { name: 'Sync queue' }).click();
  await expect(page).toHaveURL(/\/orgs\/org-rio\/jobs$/);
  await expect(page.getByTestId('jobs-live')).toHaveAttribute('data-connected', 'true');
  await expect.poll(() => lazyModules().length).toBeGreaterThan(0);

  // A direct load of a record's version timeline hydrates only once its module is in (the
  // server names it in the page, so it is fetched beside the main module, not after it).
  wasm.length = 0;
  await page.goto('/orgs/org-rio/records/PFA-00001');
  await waitForHydration(page);
  expect(wasm).toContain('/pkg/pfa-sync.wasm');
  expect(lazyModules().length).toBeGreaterThan(0);
  await expect(page.getByTestId('version').first()).toBeVisible();
});

test('a page whose module cannot be fetched says so and offers a reload; the app keeps working', async ({ page, consoleErrors }) => {
  const jobsModule = '**/pkg/split_jobs_route.wasm';
  await signIn(page, 'planner');
  await page.goto('/orgs/org-rio');
  await waitForHydration(page);
  await expect(page.getByTestId('record-count')).toHaveText('2000 records');

  // Offline for the sync queue's module: the page explains it instead of a dead app.
  await page.route(jobsModule, (route) => route.abort('internetdisconnected'));
  await page.getByRole('link', { name: 'Sync queue' }).click();
  const notLoaded = page.getByTestId('page-not-loaded');
  await expect(notLoaded).toContainText('This page could not be loaded');
  await expect(notLoaded.getByTestId('page-reload')).toBeVisible();
  // The browser and the split loader report the failed fetch; nothing else fails (no panic).
  const fetchFailed = /^(Failed to load resource: net::ERR_INTERNET_DISCONNECTED|TypeError: Failed to fetch)/;
  expect(consoleErrors.length).toBeGreaterThan(0);
  expect(consoleErrors.filter((e) => !fetchFailed.test(e))).toEqual([]);

  // The app is alive: back on the records page, it still works.
  await page.goBack();
  await expect(page.getByTestId('record-count')).toHaveText('2000 records');
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');

  // The failed fetch is kept for the life of the page (src/app/split.rs): back online, the
  // sync queue still says so, and "Reload page" brings it up.
  await page.unroute(jobsModule);
  await page.goForward();
  await expect(notLoaded).toBeVisible();
  expect(consoleErrors.filter((e) => !fetchFailed.test(e))).toEqual([]);
  consoleErrors.length = 0;
  await notLoaded.getByTestId('page-reload').click();
  await waitForHydration(page);
  await expect(page.getByTestId('jobs-live')).toHaveAttribute('data-connected', 'true');
});

test('unknown pages render a 404 page', async ({ page, consoleErrors }) => {
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByTestId('not-found')).toBeVisible();
  await waitForHydration(page);
  // The browser reports the 404 document itself; nothing else may fail.
  expect(consoleErrors).toEqual([expect.stringContaining('404 (Not Found)')]);
  consoleErrors.length = 0;
});
