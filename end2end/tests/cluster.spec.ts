// Two instances on one PostgreSQL: planner A works on instance a, planner B on instance b. Each
// sees the other's commit live (banner, toasts, grid), and both keep working through a rolling
// restart of both instances while B's job runs: the pages reconnect by themselves, get what they
// missed from the log, and the job, handed from the stopping instance to the other, finishes
// with every record written to PEMS once.
import type { Browser, WebSocket } from '@playwright/test';
import { test, expect, waitForHydration, signIn, apiAs, commitDrafts, editCell, expectCellValue, pfaRange, versionCell } from './fixtures';
import { AppServer, usePostgres, useSimulator } from './support/server';

const pg = usePostgres();
const pems = useSimulator();
// 2 PEMS writes a second: B's 40-record job runs about twenty seconds, through both restarts
// (each a graceful stop, a start, and the page's reconnection after its backoff).
const args = ['--pems-rate', '2', '--job-lease-secs', '3'];
const a = new AppServer({ pems, database: () => pg.url, args });
const b = new AppServer({ pems, database: () => pg.url, args });
const ORG = 'org-rio';

test.beforeAll(async () => {
  test.setTimeout(120_000);
  // Started together on the empty database: the demo users and records are created once.
  await Promise.all([a.start(), b.start()]);
  b.cli(['user', 'add', 'planner-b', '--password', 'planner-b-pass', '--member', `${ORG}:planner`]);
});
test.afterAll(async () => {
  await Promise.all([a.stop(), b.stop()]);
});

type Frame = { type: string; seq?: number; jobId?: string; pfaId?: string };

/** A signed-in page of `user` on instance `server`, recording every frame its sockets get. */
async function openAs(browser: Browser, server: AppServer, user: string, password: string) {
  const context = await browser.newContext({ baseURL: server.baseURL });
  const page = await context.newPage();
  const frames: Frame[] = [];
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('websocket', (ws: WebSocket) => ws.on('framereceived', (f) => frames.push(JSON.parse(String(f.payload)))));
  await signIn(page, user, password);
  await page.goto(`/orgs/${ORG}`);
  await waitForHydration(page);
  await expect(page.getByTestId('record-count')).toHaveText('2000 records');
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
  const events = () => frames.filter((f) => f.type.startsWith('SYNC_') && f.seq !== undefined);
  return { context, page, frames, events, errors };
}

test('two planners on two instances see each other live and keep working through a rolling restart of both', async ({ browser }) => {
  test.setTimeout(240_000);
  const A = await openAs(browser, a, 'planner', 'pfa-demo');
  const B = await openAs(browser, b, 'planner-b', 'planner-b-pass');
  const done = (n: number) => `Sync job completed: ${n} of ${n} records synced`;

  // A commits 20 records on instance a; B, on instance b, sees it live.
  const first = pfaRange(1, 20);
  const apiA = await apiAs(a.baseURL, 'planner');
  await commitDrafts(apiA, ORG, first.map((pfaId) => ({ pfaId, changes: { notes: `A on a: ${pfaId}` } })));
  await expect(B.page.getByTestId('banner-headline')).toContainText('1 syncing');
  for (const p of [A.page, B.page]) {
    await expect(p.getByTestId('toast').filter({ hasText: done(20) })).toBeVisible({ timeout: 30_000 });
    await expect(p.getByTestId('banner-headline')).toHaveText('All changes synced');
  }
  await expect(versionCell(B.page, first[0])).toHaveText('2');
  await expectCellValue(B.page, first[19], 'notes', `A on a: ${first[19]}`);

  // B commits 40 records on instance b; while the job runs, a and then b are restarted.
  const second = pfaRange(101, 40);
  const apiB = await apiAs(b.baseURL, 'planner-b', 'planner-b-pass');
  const job = (await commitDrafts(apiB, ORG, second.map((pfaId) => ({ pfaId, changes: { notes: `B on b: ${pfaId}` } })))).id;
  await apiB.dispose();
  const synced = (page: typeof A) => page.frames.filter((f) => f.type === 'SYNC_SUCCESS' && f.jobId === job && f.pfaId);
  await expect.poll(() => synced(A).length).toBeGreaterThanOrEqual(3);
  for (const [server, page] of [[a, A], [b, B]] as const) {
    await server.stop();
    await expect(page.page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'false');
    await server.start();
    await expect(page.page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true', { timeout: 40_000 });
  }
  expect(synced(A).length, 'the job was still running after the restarts').toBeLessThan(40);

  // Both see B's job finish; A's grid shows B's values.
  for (const p of [A.page, B.page]) {
    await expect(p.getByTestId('toast').filter({ hasText: done(40) })).toBeVisible({ timeout: 60_000 });
    await expect(p.getByTestId('banner-headline')).toHaveText('All changes synced');
  }
  // The grid renders the rows in view: find the record with the search box (it applies on Enter).
  await A.page.getByTestId('search').fill(second[39]);
  await A.page.getByTestId('search').press('Enter');
  await expect(A.page.getByTestId('record-count')).toHaveText('1 records');
  await expect(versionCell(A.page, second[39])).toHaveText('2');
  await expectCellValue(A.page, second[39], 'notes', `B on b: ${second[39]}`);
  await A.page.getByTestId('search').fill('');
  await A.page.getByTestId('search').press('Enter');
  await expect(A.page.getByTestId('record-count')).toHaveText('2000 records');

  // Each page got every event of the org once, in seq order, across its reconnections, and
  // both got the same ones; every record's success reached both; PEMS took each write once.
  for (const page of [A, B]) {
    const seqs = page.events().map((f) => f.seq!);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0] + i));
    expect(new Set(synced(page).map((f) => f.pfaId))).toEqual(new Set(second));
    expect(page.frames.filter((f) => f.jobId === job && !f.pfaId && f.type === 'SYNC_SUCCESS')).toHaveLength(1);
  }
  const bSeqs = new Set(B.events().map((f) => f.seq));
  expect(A.events().filter((f) => bSeqs.has(f.seq)).length).toBeGreaterThan(40);
  const stats = await pems.stats();
  for (const pfa of [...first, ...second]) expect(stats.byRecord[`RIO/${pfa}`], pfa).toBe(1);

  // And they keep working: A edits a record and saves a draft on the restarted instance.
  await editCell(A.page, first[0], 'notes', 'after the restarts');
  await A.page.getByTestId('save-draft').click();
  await expect(A.page.getByTestId('banner-headline')).toHaveText('1 draft(s) not committed');
  const drafts = await (await apiA.get(`/api/orgs/${ORG}/drafts`)).json();
  expect(drafts.items.map((d: { pfaId: string }) => d.pfaId)).toEqual([first[0]]);
  await apiA.dispose();

  // Chromium reports each refused connection attempt while an instance was down.
  for (const page of [A, B]) {
    expect(page.errors.every((e) => /WebSocket connection to .* failed|ERR_CONNECTION_(RESET|REFUSED)/.test(e)), page.errors.join('\n')).toBe(true);
    await page.context.close();
  }
});
