// The server dies in the middle of a job (SIGKILL) and comes back on the same port and
// database. The page reconnects by itself, resumes with `since` so the events emitted while it
// was away are replayed, and the job finishes exactly once (PEMS, a separate process, counts
// one write per record).
import type { WebSocket } from '@playwright/test';
import { test, expect, waitForHydration, signIn, apiAs, commitDrafts, pfaRange } from './fixtures';
import { useServer, useSimulator } from './support/server';

const pems = useSimulator();
// 10 PEMS writes a second: the 60-record job runs about six seconds.
const app = useServer({ pems, args: ['--pems-rate', '10'] });
const ORG = 'org-rio';

type Frame = { type: string; seq?: number; jobId?: string; pfaId?: string };

test('a server crash mid-job: the badge goes red, comes back green without a reload, events are replayed, the job finishes once', async ({ page, baseURL, consoleErrors }) => {
  test.setTimeout(120_000);
  const sockets: string[] = [];
  const frames: Frame[] = [];
  page.on('websocket', (ws: WebSocket) => {
    sockets.push(ws.url());
    ws.on('framereceived', (f) => frames.push(JSON.parse(String(f.payload))));
  });
  let navigations = 0;
  await signIn(page, 'planner');
  await page.goto(`/orgs/${ORG}`);
  await waitForHydration(page);
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations++);
  const badge = page.getByTestId('ws-badge');
  await expect(badge).toHaveAttribute('data-connected', 'true');

  const records = pfaRange(201, 60);
  const api = await apiAs(baseURL!, 'planner');
  const job = (await commitDrafts(api, ORG, records.map((pfaId) => ({ pfaId, changes: { notes: `restart ${pfaId}` } })))).id;
  await api.dispose();

  // Some records are synced, then the server is killed.
  const synced = () => frames.filter((f) => f.type === 'SYNC_SUCCESS' && f.jobId === job && f.pfaId);
  await expect.poll(() => synced().length).toBeGreaterThanOrEqual(10);
  await expect(page.getByTestId('banner-progress')).toBeVisible();
  await app.kill();
  await expect(badge).toHaveAttribute('data-connected', 'false');
  await expect(badge).toHaveAttribute('aria-label', 'WebSocket disconnected');
  const events = () => frames.filter((f) => f.type.startsWith('SYNC_') && f.seq !== undefined);
  const lastBefore = Math.max(...events().map((f) => f.seq!));
  expect(synced().length).toBeLessThan(60);

  await app.start();
  await expect(badge).toHaveAttribute('data-connected', 'true', { timeout: 40_000 });
  // The job resumes on start and finishes; the page learns it live.
  await expect(page.getByTestId('toast').filter({ hasText: 'Sync job completed: 60 of 60 records synced' })).toBeVisible({ timeout: 40_000 });
  await expect(page.getByTestId('banner-headline')).toHaveText('All changes synced');
  expect(navigations, 'no reload').toBe(0);

  // The second socket resumed after the last event the page had seen...
  expect(sockets.length).toBeGreaterThanOrEqual(2);
  expect(sockets[sockets.length - 1]).toMatch(new RegExp(`\\?since=${lastBefore}$`));
  // ...and the page got every event of the org once, in order, without a gap.
  const seqs = events().map((f) => f.seq!);
  const first = seqs[0];
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => first + i));
  // Every record's success reached the page, and the job finished exactly once.
  expect(new Set(synced().map((f) => f.pfaId))).toEqual(new Set(records));
  expect(frames.filter((f) => f.jobId === job && !f.pfaId && f.type === 'SYNC_SUCCESS')).toHaveLength(1);
  const stats = await pems.stats();
  for (const pfa of records) expect(stats.byRecord[`RIO/${pfa}`], pfa).toBe(1);

  // Chromium reports each refused connection attempt while the server was down, and a
  // request cut by the crash (the page refetches after its next event).
  expect(consoleErrors.every((e) => /WebSocket connection to .* failed|ERR_CONNECTION_(RESET|REFUSED)/.test(e)), consoleErrors.join('\n')).toBe(true);
  consoleErrors.length = 0;
});
