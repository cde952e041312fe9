// The card's "Manual Test Checklist", one test per item, named after the item, against the real
// binary in dev mode (demo users and data, the in-process PEMS simulator).
import type { Page } from '@playwright/test';
import { test, expect, waitForHydration, openOrg, cell, editCell, expectCellValue, publishAs, versionCell } from './fixtures';
import { useServer } from './support/server';

const app = useServer();
const ORG = 'org-rio';

/** Collects the page's console lines from now on. */
function consoleOf(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (m) => lines.push(m.text()));
  return lines;
}

test('WebSocket connects on page load', async ({ page, baseURL }) => {
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await openOrg(page, 'planner');
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
  // One socket, to the page's own host, for the org of the page.
  expect(sockets).toEqual([`${baseURL!.replace('http', 'ws')}/api/ws/sync/${ORG}`]);
});

test('Green "WS" badge shows in dev mode', async ({ page }) => {
  await openOrg(page, 'planner');
  const badge = page.getByTestId('ws-badge');
  await expect(badge).toHaveAttribute('data-connected', 'true');
  // A dot and the letters (the dot is decoration; the state is in the label and the colour).
  await expect(badge).toHaveText(/^\W*WS$/);
  await expect(badge).toHaveAttribute('aria-label', 'WebSocket connected');
  const color = await badge.evaluate((el) => getComputedStyle(el).backgroundColor);
  const [r, g, b] = color.match(/\d+/g)!.map(Number);
  expect(g, `badge colour ${color} is green`).toBeGreaterThan(r);
  expect(g).toBeGreaterThan(b);
});

test('Console logs connection events', async ({ page, baseURL }) => {
  const lines = consoleOf(page);
  await openOrg(page, 'planner');
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
  const url = `${baseURL!.replace('http', 'ws')}/api/ws/sync/${ORG}`;
  expect(lines).toContain(`[WebSocket] Connecting to: ${url}`);
  expect(lines).toContain('[WebSocket] Connected to sync status updates');
  // Leaving the page closes the socket and says so.
  await page.getByRole('link', { name: 'Sync queue' }).click();
  await expect(page).toHaveURL(/\/jobs$/);
  await expect.poll(() => lines.filter((l) => l === '[WebSocket] Disconnected').length).toBeGreaterThan(0);
});

test('Sync events trigger UI updates', async ({ page }) => {
  await openOrg(page, 'planner');
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
  await publishAs(page, 'admin', ORG, { type: 'SYNC_STARTED', jobId: 'e2e-check', message: 'Sync started for 2 records' });
  await expect(page.getByTestId('toast').filter({ hasText: 'Sync started for 2 records' })).toBeVisible();
  await publishAs(page, 'admin', ORG, {
    type: 'SYNC_PROGRESS', jobId: 'e2e-check', progress: 50, data: { jobStatus: 'running' },
  });
  await expect(page.getByTestId('banner-progress')).toHaveAttribute('value', '50');
  await expect(page.getByTestId('banner-headline')).toHaveText('1 syncing');
  await publishAs(page, 'admin', ORG, { type: 'SYNC_SUCCESS', jobId: 'e2e-check', message: 'Sync completed' });
  await expect(page.getByTestId('last-event')).toHaveText('Last event: SYNC_SUCCESS Sync completed');
  await expect(page.getByTestId('banner-progress')).toHaveCount(0);
  await expect(page.getByTestId('banner-headline')).toHaveText('All changes synced');
});

test('Auto-reconnect works after disconnect', async ({ page, consoleErrors }) => {
  const lines = consoleOf(page);
  await openOrg(page, 'planner');
  const badge = page.getByTestId('ws-badge');
  await expect(badge).toHaveAttribute('data-connected', 'true');
  let navigations = 0;
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations++);

  await app.stop();
  await expect(badge).toHaveAttribute('data-connected', 'false');
  await expect(badge).toHaveAttribute('aria-label', 'WebSocket disconnected');
  await app.start();
  // Backoff with full jitter from 1 s: back within a few attempts, on the same page.
  await expect(badge).toHaveAttribute('data-connected', 'true', { timeout: 30_000 });
  expect(navigations).toBe(0);
  expect(lines.filter((l) => l === '[WebSocket] Connected to sync status updates').length).toBe(2);

  // The reconnected socket delivers again.
  await publishAs(page, 'admin', ORG, { type: 'SYNC_SUCCESS', jobId: 'e2e-back', message: 'after the restart' });
  await expect(page.getByTestId('last-event')).toHaveText('Last event: SYNC_SUCCESS after the restart');
  // Chromium reports each refused connection attempt while the server was down.
  expect(consoleErrors.every((e) => /WebSocket connection to .* failed/.test(e))).toBe(true);
  consoleErrors.length = 0;
});

test('Optimistic updates feel instant', async ({ page }) => {
  await openOrg(page, 'editor');
  await editCell(page, 'PFA-00005', 'notes', 'instant');
  // Shown at once, before any request: the cell is marked pending.
  await expect(cell(page, 'PFA-00005', 'notes')).toHaveClass(/pending/);
  await expect(page.getByTestId('banner-headline')).toHaveText('1 unsaved');
  const ms = await page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        const toasts = document.querySelector('[data-testid=toasts]')!;
        const started = performance.now();
        const observer = new MutationObserver(() => {
          if (toasts.textContent!.includes('Saved!')) {
            observer.disconnect();
            resolve(performance.now() - started);
          }
        });
        observer.observe(toasts, { childList: true, subtree: true, characterData: true });
        (document.querySelector('[data-testid=save-draft]') as HTMLButtonElement).click();
      }),
  );
  console.log(`Saved! ${ms.toFixed(2)} ms after the click`);
  expect(ms).toBeLessThan(100);
  await expect(page.getByTestId('banner-headline')).toHaveText('1 draft(s) not committed');
  await expect(cell(page, 'PFA-00005', 'notes')).toHaveClass(/drafted/);
});

test('Rollback works on save failure', async ({ page, consoleErrors }) => {
  await openOrg(page, 'editor');
  await page.route(`**/api/orgs/${ORG}/drafts`, (route) =>
    route.fulfill({ status: 500, contentType: 'application/json', body: '{"error":"INTERNAL","message":"internal error"}' }),
  );
  await editCell(page, 'PFA-00006', 'monthlyRate', '4321');
  await page.getByTestId('save-draft').click();
  await expect(page.getByTestId('toast').filter({ hasText: 'Saved!' })).toBeVisible();
  await expect(page.getByTestId('toast').filter({ hasText: 'Failed to save - changes reverted' })).toBeVisible();
  await expect(cell(page, 'PFA-00006', 'monthlyRate')).toHaveClass(/pending/);
  await expectCellValue(page, 'PFA-00006', 'monthlyRate', '4321');
  await expect(page.getByTestId('banner-headline')).toHaveText(/^1 unsaved/);
  // Once the server answers again, the same edit saves.
  await page.unroute(`**/api/orgs/${ORG}/drafts`);
  await page.getByTestId('save-draft').click();
  await expect(cell(page, 'PFA-00006', 'monthlyRate')).toHaveClass(/drafted/);
  const draft = await page.context().request.get(`/api/orgs/${ORG}/records/PFA-00006`);
  expect((await draft.json()).draft.changes).toEqual({ monthlyRate: 4321 });
  expect(consoleErrors).toEqual([expect.stringContaining('500 (Internal Server Error)')]);
  consoleErrors.length = 0;
});

test('React Query cache invalidates on sync success', async ({ page }) => {
  await openOrg(page, 'planner');
  await expect(versionCell(page, 'PFA-00007')).toHaveText('1');
  // A second tab on the sync queue: its job list refetches too.
  const jobsPage = await page.context().newPage();
  await jobsPage.goto(`/orgs/${ORG}/jobs`);
  await waitForHydration(jobsPage);
  await expect(jobsPage.getByTestId('jobs-live')).toHaveAttribute('data-connected', 'true');

  await editCell(page, 'PFA-00007', 'equipment', 'CAT-336');
  await page.getByTestId('save-draft').click();
  await expect(cell(page, 'PFA-00007', 'equipment')).toHaveClass(/drafted/);
  await page.getByTestId('commit').click();
  await page.getByTestId('confirm-yes').click();
  await expect(page.getByTestId('toast').filter({ hasText: 'PFA-00007 synced!' })).toBeVisible();
  // No reload: the grid shows PEMS's new version and the value, the queue the finished job.
  await expect(versionCell(page, 'PFA-00007')).toHaveText('2');
  await expectCellValue(page, 'PFA-00007', 'equipment', 'CAT-336');
  await expect(cell(page, 'PFA-00007', 'equipment')).not.toHaveClass(/drafted|pending/);
  await expect(jobsPage.locator('[data-testid=job-row][data-status=completed]')).toHaveCount(1);
  await jobsPage.close();
});
