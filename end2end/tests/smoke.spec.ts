import { test, expect, waitForHydration } from './fixtures';
import { useServer } from './support/server';

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
  for (const encoding of ['br', 'gzip']) {
    const response = await request.get('/pkg/pfa-sync.wasm', { headers: { 'accept-encoding': encoding } });
    expect(response.status()).toBe(200);
    expect(response.headers()['content-encoding']).toBe(encoding);
    expect(response.headers()['content-type']).toBe('application/wasm');
  }
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
