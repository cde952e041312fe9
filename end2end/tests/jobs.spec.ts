// The sync-queue dashboard, the conflict dialog and the version timeline, against the real
// server in dev mode (demo data, built-in PEMS simulator at its default 50 writes a second).
// Jobs are made through the API with the signed-in user's cookie; each test uses its own
// records (PFA-01xxx) so the other specs' records stay untouched.
import type { Page } from '@playwright/test';
import { test, expect, waitForHydration, signIn, pfa, pfaRange, jobRow, commitDrafts, waitForJob } from './fixtures';
import { useServer } from './support/server';

useServer();

const ORG = 'org-rio';

async function openJobs(page: Page) {
  await page.goto(`/orgs/${ORG}/jobs`);
  await waitForHydration(page);
  await expect(page.getByTestId('jobs-live')).toHaveAttribute('data-connected', 'true');
}

test('the sync queue shows a committed job live until it completes, with its records', async ({ page, baseURL }) => {
  await signIn(page, 'planner');
  await openJobs(page);
  await expect(page.getByTestId('tab-jobs')).toHaveAttribute('aria-current', 'page');

  const ids = pfaRange(1501, 40);
  const job = await commitDrafts(
    page.context().request,
    ORG,
    ids.map((pfaId) => ({ pfaId, changes: { notes: `e2e queue ${pfaId}` } })),
    { origin: baseURL!, reason: 'e2e jobs spec' },
  );

  const row = jobRow(page, job.id);
  await expect(row).toBeVisible();
  await expect(row).toHaveAttribute('data-status', 'completed', { timeout: 20_000 });
  await expect(row.getByTestId('job-percent')).toHaveText('100%');
  await expect(row.getByTestId('job-counts')).toHaveText('40 / 0 / 0 / 0');
  await expect(row.getByTestId('job-status')).toHaveText('completed');
  // A finished job offers no command.
  await expect(row.getByRole('button', { name: 'Pause' })).toHaveCount(0);

  await row.getByTestId('job-toggle').click();
  await expect(row).toHaveAttribute('class', /open/);
  const items = page.getByTestId('job-detail').getByTestId('job-item');
  await expect(items).toHaveCount(40);
  await expect(page.getByTestId('job-detail').locator('[data-testid=job-item][data-status=synced]')).toHaveCount(40);

  // The status filter asks the server for that status only.
  await page.getByTestId('status-filter').selectOption('cancelled');
  await expect(row).toHaveCount(0);
  await page.getByTestId('status-filter').selectOption('completed');
  await expect(row).toBeVisible();

  // A planner sees the record's new version but cannot roll back.
  await page.goto(`/orgs/${ORG}/records/${ids[0]}`);
  await waitForHydration(page);
  await expect(page.getByTestId('version-title').first()).toHaveText('Version 2 (Current)');
  await expect(page.getByTestId('diff-line').first()).toContainText(`-> e2e queue ${ids[0]}`);
  await expect(page.getByTestId('rollback-open')).toHaveCount(0);
});

test('pause, resume and cancel are sent over the page\'s one socket and answered', async ({ page, baseURL }) => {
  await signIn(page, 'planner');
  // Every socket the page opens, and the commands sent on each.
  const sockets: { url: string; commands: string[] }[] = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), commands: [] as string[] };
    sockets.push(socket);
    ws.on('framesent', (frame) => {
      const type = /"type":"([A-Z_]+)"/.exec(String(frame.payload))?.[1];
      if (type) socket.commands.push(type);
    });
  });
  await openJobs(page);

  // 300 records at 50 writes a second: about six seconds of running time.
  const job = await commitDrafts(
    page.context().request,
    ORG,
    pfaRange(1001, 300).map((pfaId) => ({ pfaId, changes: { notes: `e2e pause ${pfaId}` } })),
    { origin: baseURL!, reason: 'e2e jobs spec' },
  );
  const row = jobRow(page, job.id);
  const result = page.getByTestId('command-result');
  await expect(result).toHaveAttribute('role', 'status');

  await expect(row.getByTestId('job-pause')).toBeVisible();
  await row.getByTestId('job-pause').click();
  await expect(result).toHaveText(`pause job ${job.id}: now paused`);
  await expect(row).toHaveAttribute('data-status', 'paused');
  await expect(row.getByTestId('job-pause')).toHaveCount(0);
  await expect(row.getByTestId('job-percent')).not.toHaveText('100%');

  await row.getByTestId('job-resume').click();
  await expect(result).toHaveText(`resume job ${job.id}: now running`);
  await expect(row).toHaveAttribute('data-status', 'running');

  await row.getByTestId('job-pause').click();
  await expect(row).toHaveAttribute('data-status', 'paused');

  // Cancel asks first; "Keep it" backs out.
  await row.getByTestId('job-cancel').click();
  await expect(row.getByTestId('job-cancel-confirm')).toBeVisible();
  await row.getByTestId('job-cancel-keep').click();
  await expect(row.getByTestId('job-cancel-confirm')).toHaveCount(0);
  await expect(row).toHaveAttribute('data-status', 'paused');

  await row.getByTestId('job-cancel').click();
  await row.getByTestId('job-cancel-confirm').click();
  await expect(result).toHaveText(`cancel job ${job.id}: now cancelled`);
  await expect(row).toHaveAttribute('data-status', 'cancelled');
  await expect(row.getByRole('button')).toHaveText([job.id]);
  // All of it went over the page's live socket: no socket of its own per command.
  expect(sockets.map((socket) => new URL(socket.url).pathname)).toEqual([`/api/ws/sync/${ORG}`]);
  expect(sockets[0].commands).toEqual(['PAUSE_SYNC', 'RESUME_SYNC', 'PAUSE_SYNC', 'CANCEL_SYNC']);

  // The cancelled changes went back to the planner's drafts; discard them.
  const discarded = await page.context().request.post(`/api/orgs/${ORG}/drafts/discard`, {
    data: { pfaIds: pfaRange(1001, 300) },
    headers: { origin: baseURL! },
  });
  expect(discarded.status()).toBe(200);
});

test('a conflict opens in the dialog, shows both values and is resolved by merge', async ({ page, baseURL, consoleErrors }) => {
  await signIn(page, 'planner');
  const request = page.context().request;
  const [first, second] = [pfa(1601), pfa(1602)];

  // The planner changes the notes of two records (now version 2 in PEMS), then commits other
  // notes based on version 1: PEMS changed the same field meanwhile, so both conflict.
  const synced = await commitDrafts(request, ORG, [
    { pfaId: first, changes: { notes: 'e2e PEMS A' } },
    { pfaId: second, changes: { notes: 'e2e PEMS A' } },
  ], { origin: baseURL!, reason: 'e2e jobs spec' });
  await waitForJob(request, ORG, synced.id, 'completed');
  const stale = await commitDrafts(request, ORG, [
    { pfaId: first, changes: { notes: 'e2e mine B' }, baseVersion: 1 },
    { pfaId: second, changes: { notes: 'e2e mine B' }, baseVersion: 1 },
  ], { origin: baseURL!, reason: 'e2e jobs spec' });
  await waitForJob(request, ORG, stale.id, 'completed_with_conflicts');

  await openJobs(page);
  const item = (pfaId: string) => page.locator(`[data-testid=conflict-item][data-pfa-id="${pfaId}"]`);
  await expect(item(first)).toHaveCount(1);
  await expect(item(second)).toHaveCount(1);

  // The dialog shows the record and both values; Escape closes it.
  await item(first).getByTestId('conflict-resolve').click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toHaveAttribute('aria-modal', 'true');
  await expect(dialog.getByTestId('conflict-record')).toHaveText(first);
  const notes = dialog.locator('[data-testid=conflict-field][data-field=notes]');
  await expect(notes.getByTestId('conflict-mine')).toHaveText('e2e mine B');
  await expect(notes.getByTestId('conflict-pems')).toHaveText('e2e PEMS A');
  await expect(dialog.getByRole('columnheader', { name: 'Your value' })).toBeVisible();
  await expect(dialog.getByRole('columnheader', { name: 'PEMS value' })).toBeVisible();
  // Keyboard: focus starts in the dialog and Tab / Shift+Tab never leave it.
  const focusInDialog = () =>
    page.evaluate(() => document.querySelector('[data-testid=conflict-dialog]')!.contains(document.activeElement));
  expect(await focusInDialog()).toBe(true);
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    expect(await focusInDialog(), `after ${i + 1} Tab`).toBe(true);
  }
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Shift+Tab');
    expect(await focusInDialog(), `after ${i + 1} Shift+Tab`).toBe(true);
  }
  await page.keyboard.press('Escape');
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);
  // Focus is back on the button that opened it.
  await expect(item(first).getByTestId('conflict-resolve')).toBeFocused();

  // Someone else resolves it meanwhile: the dialog shows the server's 409 and stays open.
  await item(first).getByTestId('conflict-resolve').click();
  await expect(dialog.getByTestId('conflict-record')).toHaveText(first);
  const conflictId = await item(first).getAttribute('data-conflict-id');
  const elsewhere = await request.post(`/api/orgs/${ORG}/conflicts/${conflictId}/resolve`, {
    data: { resolution: 'use_pems' },
    headers: { origin: baseURL! },
  });
  expect(elsewhere.status()).toBe(200);
  await dialog.getByRole('button', { name: 'Use mine' }).click();
  await expect(dialog.getByTestId('conflict-error')).toHaveText(`conflict ${conflictId} is already resolved`);
  // Chromium reports every non-2xx fetch on the console; this 409 is the one provoked on purpose.
  const expected409 = 'Failed to load resource: the server responded with a status of 409 (Conflict)';
  expect(consoleErrors).toContain(expected409);
  consoleErrors.splice(consoleErrors.indexOf(expected409), 1);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);
  await expect(item(first)).toHaveCount(0);

  // Merge: every field needs a choice, then the chosen values are re-queued.
  await item(second).getByTestId('conflict-resolve').click();
  await dialog.getByTestId('conflict-merge').click();
  await dialog.getByTestId('conflict-apply-merge').click();
  await expect(dialog.getByTestId('conflict-error')).toHaveText("Choose your value or PEMS's for notes");
  await dialog.getByTestId('merge-notes-mine').check();
  await dialog.getByTestId('conflict-apply-merge').click();
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);
  await expect(page.getByTestId('command-result')).toContainText(/resolved; job job-[0-9a-f]+ queued/);
  await expect(item(second)).toHaveCount(0);

  // The merge syncs: the record ends with the planner's value.
  await page.goto(`/orgs/${ORG}/records/${second}`);
  await waitForHydration(page);
  await expect(page.getByTestId('version').first().getByTestId('diff-line')).toHaveText(
    'notes: e2e PEMS A -> e2e mine B',
    { timeout: 15_000 },
  );
});

test('an admin sees the version timeline and rolls back with a reason', async ({ page, baseURL }) => {
  await signIn(page, 'admin');
  const record = pfa(1701);
  const request = page.context().request;
  const original = (await (await request.get(`/api/orgs/${ORG}/records/${record}`)).json()).notes as string;
  const job = await commitDrafts(request, ORG, [
    { pfaId: record, changes: { notes: 'e2e history change' }, reason: 'Vendor sent a new quote' },
  ], { origin: baseURL!, reason: 'e2e jobs spec' });
  await waitForJob(request, ORG, job.id, 'completed');

  await page.goto(`/orgs/${ORG}/records/${record}`);
  await waitForHydration(page);
  const versions = page.getByTestId('version');
  await expect(versions).toHaveCount(2);
  const newest = versions.first();
  await expect(newest.getByTestId('version-title')).toHaveText('Version 2 (Current)');
  await expect(newest.getByTestId('version-by')).toHaveText('admin');
  await expect(newest.getByTestId('version-reason')).toHaveText('Vendor sent a new quote');
  await expect(newest.getByTestId('version-kind')).toHaveText('sync');
  await expect(newest.getByTestId('diff-line')).toHaveText(`notes: ${original || '(empty)'} -> e2e history change`);
  await expect(versions.nth(1).getByTestId('version-title')).toHaveText('Version 1');
  // The current version cannot be rolled back to; the older one can.
  await expect(newest.getByTestId('rollback-open')).toHaveCount(0);
  await versions.nth(1).getByRole('button', { name: 'Roll back to this version' }).click();

  const form = page.getByTestId('rollback-form');
  await form.getByTestId('rollback-reason').fill('too short');
  await form.getByTestId('rollback-submit').click();
  await expect(form.getByTestId('rollback-error')).toHaveText('Please give a reason of at least 10 characters.');

  await form.getByTestId('rollback-reason').fill('Vendor quote withdrawn');
  await form.getByTestId('rollback-submit').click();
  await expect(page.getByTestId('rollback-job')).toContainText(/Rollback job job-[0-9a-f]+/);
  await expect(newest.getByTestId('version-title')).toHaveText('Version 3 (Current)');
  await expect(newest.getByTestId('version-kind')).toHaveText('rollback');
  await expect(newest.getByTestId('version-reason')).toHaveText('Rollback to version 1: Vendor quote withdrawn');
  await expect(newest.getByTestId('diff-line')).toHaveText(`notes: e2e history change -> ${original || '(empty)'}`);
  await expect(page.getByTestId('rollback-job')).toContainText('completed');
});
