// Conflicts made the way they happen: someone edits a record directly in PEMS (the simulator's
// remote-edit API) while a planner has a draft of it. The commit meets PEMS's 409, the dialog
// opens on the planner's page, and each resolution ends in PEMS and in the grid.
import type { Page } from '@playwright/test';
import { test, expect, openOrg, cell, editCell, expectCellValue, versionCell, waitForHydration } from './fixtures';
import { useServer, useSimulator } from './support/server';

const pems = useSimulator();
useServer({ pems });
const ORG = 'org-rio';
const CODE = 'RIO';

/** The planner drafts `edits` of `pfa`, PEMS changes `remote` meanwhile, the planner commits. */
async function commitIntoConflict(page: Page, pfa: string, edits: Record<string, string>, remote: Record<string, unknown>) {
  for (const [field, value] of Object.entries(edits)) await editCell(page, pfa, field, value);
  await page.getByTestId('save-draft').click();
  for (const field of Object.keys(edits)) await expect(cell(page, pfa, field)).toHaveClass(/drafted/);
  // The draft was made on version 1; PEMS moves to version 2 behind the planner's back.
  await pems.remoteEdit(CODE, pfa, remote, 1);
  await page.getByTestId('commit').click();
  await page.getByTestId('confirm-yes').click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByTestId('conflict-record')).toHaveText(pfa);
  await expect(page.getByTestId('toast').filter({ hasText: `Conflict on ${pfa}` })).toBeVisible();
  return dialog;
}

test('a remote edit in PEMS opens the dialog; "Use mine" writes the planner\'s value over it', async ({ page }) => {
  // The dialog's code is a lazy module: not fetched with the records page, fetched when a
  // conflict opens.
  const wasm: string[] = [];
  page.on('requestfinished', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.endsWith('.wasm')) wasm.push(path);
  });
  await openOrg(page, 'planner');
  expect(wasm.filter((path) => path.includes('dialog'))).toEqual([]);
  const pfa = 'PFA-00021';
  const dialog = await commitIntoConflict(page, pfa, { notes: 'planner note' }, { notes: 'PEMS note' });
  await expect.poll(() => wasm.filter((path) => /^\/pkg\/split_conflict_dialog\.wasm$/.test(path))).toHaveLength(1);
  const notes = dialog.locator('[data-testid=conflict-field][data-field=notes]');
  await expect(notes.getByTestId('conflict-mine')).toHaveText('planner note');
  await expect(notes.getByTestId('conflict-pems')).toHaveText('PEMS note');
  await expect(dialog).toContainText('now version 2');

  await dialog.getByTestId('conflict-use-mine').click();
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);
  await expect(page.getByTestId('toast').filter({ hasText: `${pfa} synced!` })).toBeVisible();
  await expect(versionCell(page, pfa)).toHaveText('3');
  await expectCellValue(page, pfa, 'notes', 'planner note');
  await expect(page.getByTestId('banner-headline')).toHaveText('All changes synced');
  // PEMS has the planner's value on top of the remote edit, written once.
  const stats = await pems.stats();
  expect(stats.byRecord[`${CODE}/${pfa}`]).toBe(1);
});

test('when the dialog\'s module cannot be fetched, the page says so, and after a reload the conflict is resolved from the sync queue', async ({ page, consoleErrors }) => {
  await page.route('**/pkg/split_conflict_dialog.wasm', (route) => route.abort('internetdisconnected'));
  await openOrg(page, 'planner');
  const pfa = 'PFA-00024';
  await editCell(page, pfa, 'notes', 'planner note');
  await page.getByTestId('save-draft').click();
  await expect(cell(page, pfa, 'notes')).toHaveClass(/drafted/);
  await pems.remoteEdit(CODE, pfa, { notes: 'PEMS note' }, 1);
  await page.getByTestId('commit').click();
  await page.getByTestId('confirm-yes').click();

  // The page keeps working: the conflict is announced and the failure explained, not a dead app.
  await expect(page.getByTestId('toast').filter({ hasText: `Conflict on ${pfa}` })).toBeVisible();
  const notLoaded = page.getByRole('alertdialog');
  await expect(notLoaded).toContainText('could not be loaded');
  await expect(notLoaded.getByTestId('conflict-reload')).toBeFocused();
  await expect(page.getByTestId('banner-headline')).toBeVisible();
  expect(consoleErrors.length).toBeGreaterThan(0);
  expect(consoleErrors.filter((e) => !/^(Failed to load resource: net::ERR_INTERNET_DISCONNECTED|TypeError: Failed to fetch)/.test(e))).toEqual([]);
  consoleErrors.length = 0;

  // Back online: "Reload page", and the conflict, still open, is resolved from the sync queue.
  await page.unroute('**/pkg/split_conflict_dialog.wasm');
  await notLoaded.getByTestId('conflict-reload').click();
  await waitForHydration(page);
  await expect(page.getByTestId('record-count')).toHaveText('2000 records');
  await page.getByTestId('tab-jobs').click();
  await page.getByTestId('open-conflicts').getByTestId('conflict-resolve').first().click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByTestId('conflict-record')).toHaveText(pfa);
  await dialog.getByTestId('conflict-use-pems').click();
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);
  await page.getByTestId('tab-records').click();
  await expectCellValue(page, pfa, 'notes', 'PEMS note');
});

test('"Use PEMS" keeps the remote value and drops the planner\'s', async ({ page }) => {
  await openOrg(page, 'planner');
  const pfa = 'PFA-00022';
  const dialog = await commitIntoConflict(page, pfa, { notes: 'planner note' }, { notes: 'PEMS wins' });
  await dialog.getByTestId('conflict-use-pems').click();
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);
  await expectCellValue(page, pfa, 'notes', 'PEMS wins');
  await expect(versionCell(page, pfa)).toHaveText('2');
  await expect(cell(page, pfa, 'notes')).not.toHaveClass(/drafted|pending/);
  await expect(page.getByTestId('banner-headline')).toHaveText('All changes synced');
  expect((await pems.stats()).byRecord[`${CODE}/${pfa}`] ?? 0).toBe(0);
});

test('merge by field: the planner keeps one field and takes PEMS\'s other, and the re-sync succeeds', async ({ page }) => {
  await openOrg(page, 'planner');
  const pfa = 'PFA-00023';
  const dialog = await commitIntoConflict(
    page,
    pfa,
    { notes: 'planner note', equipment: 'CAT-320' },
    { notes: 'PEMS note', equipment: 'PEMS-EX1' },
  );
  await expect(dialog.getByTestId('conflict-field')).toHaveCount(2);
  await dialog.getByTestId('conflict-merge').click();
  await dialog.getByTestId('merge-notes-mine').check();
  await dialog.getByTestId('conflict-apply-merge').click();
  await expect(dialog.getByTestId('conflict-error')).toHaveText("Choose your value or PEMS's for equipment");
  await dialog.getByTestId('merge-equipment-pems').check();
  await dialog.getByTestId('conflict-apply-merge').click();
  await expect(page.getByTestId('conflict-dialog')).toHaveCount(0);

  await expect(page.getByTestId('toast').filter({ hasText: `${pfa} synced!` })).toBeVisible();
  await expect(versionCell(page, pfa)).toHaveText('3');
  await expectCellValue(page, pfa, 'notes', 'planner note');
  await expectCellValue(page, pfa, 'equipment', 'PEMS-EX1');
  await expect(page.getByTestId('banner-headline')).toHaveText('All changes synced');
});
