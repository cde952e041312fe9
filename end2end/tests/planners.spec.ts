// Several people at once: two planners of org-rio in their own browser contexts and a viewer
// of org-portarthur. Planner A commits 50 records; planner B sees the same progress live and the
// refreshed grid; the org-portarthur viewer receives nothing of it.
import type { Browser, Page, WebSocket } from '@playwright/test';
import { test, expect, waitForHydration, signIn, apiAs, expectCellValue, pfaRange, versionCell } from './fixtures';
import { useServer } from './support/server';

// 10 PEMS writes a second: the 50-record job runs for about five seconds, long enough to watch.
const app = useServer({ args: ['--pems-rate', '10'] });

type Seen = { type: string; jobId?: string; pfaId?: string; seq?: number; progress?: number; org?: string };

/** A signed-in page of `user` on `org`'s records, recording every sync event its socket gets. */
async function openAs(browser: Browser, user: string, password: string, org: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen: Seen[] = [];
  page.on('websocket', (ws: WebSocket) =>
    ws.on('framereceived', (f) => {
      const frame = JSON.parse(String(f.payload));
      if (frame.type?.startsWith('SYNC_')) seen.push(frame);
    }),
  );
  await signIn(page, user, password);
  await page.goto(`/orgs/${org}`);
  await waitForHydration(page);
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
  return { context, page, seen };
}

test.beforeAll(() => {
  app.cli(['user', 'add', 'planner-b', '--password', 'planner-b-pass', '--member', 'org-rio:planner']);
  app.cli(['user', 'add', 'pa-viewer', '--password', 'pa-viewer-pass', '--member', 'org-portarthur:viewer']);
});

test('two planners watch one commit live; a viewer of another org sees nothing of it', async ({ browser, baseURL }) => {
  test.setTimeout(90_000);
  const a = await openAs(browser, 'planner', 'pfa-demo', 'org-rio');
  const b = await openAs(browser, 'planner-b', 'planner-b-pass', 'org-rio');
  const outsider = await openAs(browser, 'pa-viewer', 'pa-viewer-pass', 'org-portarthur');
  await expect(outsider.page.getByTestId('record-count')).toHaveText('500 records');

  // Planner A saves 50 drafts (as a batch through the API, as an import would) and commits
  // them from the page.
  const ids = pfaRange(1, 50);
  const api = await apiAs(baseURL!, 'planner');
  const saved = await api.put('/api/orgs/org-rio/drafts', {
    data: { drafts: ids.map((pfaId) => ({ pfaId, changes: { notes: `A's change to ${pfaId}` } })) },
  });
  expect(saved.status(), await saved.text()).toBe(200);
  await api.dispose();
  await a.page.reload();
  await waitForHydration(a.page);
  await expect(a.page.getByTestId('banner-headline')).toHaveText('50 draft(s) not committed');
  // B has no drafts of their own: drafts are per author.
  await expect(b.page.getByTestId('banner-headline')).toHaveText('All changes synced');
  await a.page.getByTestId('commit').click();
  await a.page.getByTestId('confirm-yes').click();

  // Both planners see the job running with a live progress bar, then finished.
  for (const p of [a.page, b.page]) {
    await expect(p.getByTestId('banner-progress')).toBeVisible();
    await expect(p.getByTestId('banner-headline')).toContainText('1 syncing');
  }
  for (const p of [a.page, b.page]) {
    await expect(p.getByTestId('toast').filter({ hasText: 'Sync job completed: 50 of 50 records synced' })).toBeVisible({ timeout: 30_000 });
    await expect(p.getByTestId('banner-progress')).toHaveCount(0);
    await expect(p.getByTestId('banner-headline')).toHaveText('All changes synced');
  }
  // B's grid is refreshed without a reload: new versions and A's values.
  await expect(versionCell(b.page, ids[0])).toHaveText('2');
  await expect(versionCell(b.page, ids[10])).toHaveText('2');
  await expectCellValue(b.page, ids[0], 'notes', `A's change to ${ids[0]}`);

  // The same events reached A and B, in the same order, progress included.
  const job = a.seen.find((e) => e.type === 'SYNC_STARTED' && !e.pfaId)!.jobId!;
  const ofJob = (seen: Seen[]) => seen.filter((e) => e.jobId === job).map((e) => `${e.seq} ${e.type} ${e.pfaId ?? ''} ${e.progress ?? ''}`);
  await expect.poll(() => ofJob(b.seen).length).toBe(ofJob(a.seen).length);
  expect(ofJob(b.seen)).toEqual(ofJob(a.seen));
  expect(a.seen.filter((e) => e.jobId === job && e.type === 'SYNC_PROGRESS').length).toBeGreaterThan(1);
  expect(a.seen.filter((e) => e.jobId === job && e.type === 'SYNC_SUCCESS' && e.pfaId).length).toBe(50);

  // The viewer of org-portarthur got no event at all, and their page shows none.
  expect(outsider.seen).toEqual([]);
  await expect(outsider.page.getByTestId('banner-headline')).toHaveText('All changes synced');
  await expect(outsider.page.getByTestId('last-event')).not.toContainText('SYNC');
  for (const who of [a, b, outsider]) await who.context.close();
});
