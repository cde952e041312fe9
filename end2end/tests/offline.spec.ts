// An offline planner: the browser loses the network while editing and saving. The edits stay on
// screen (and in local storage), Save Draft waits for the connection, and when the browser is
// back online they are saved once: nothing lost, nothing duplicated.
import { test, expect, waitForHydration, openOrg, cell, editCell, expectCellValue } from './fixtures';
import { useServer } from './support/server';

useServer();
const ORG = 'org-rio';

test('edits made and saved offline are kept and saved once when the browser is back online', async ({ page, context, consoleErrors }) => {
  await openOrg(page, 'planner');

  await editCell(page, 'PFA-00011', 'notes', 'edited before the outage');
  await context.setOffline(true);
  await editCell(page, 'PFA-00012', 'notes', 'edited offline');
  await editCell(page, 'PFA-00013', 'monthlyRate', '2750');
  await page.getByTestId('save-draft').click();
  await expect(page.getByTestId('toast').filter({ hasText: 'You are offline - your changes will be saved when the connection is back' })).toBeVisible();
  // Nothing was lost: all three edits are still pending on screen and in local storage.
  for (const [pfa, field] of [['PFA-00011', 'notes'], ['PFA-00012', 'notes'], ['PFA-00013', 'monthlyRate']]) {
    await expect(cell(page, pfa, field)).toHaveClass(/pending/);
  }
  await expect(page.getByTestId('banner-headline')).toHaveText('3 unsaved');
  const stored = await page.evaluate(() => JSON.stringify(Object.entries(localStorage)));
  expect(stored).toContain('edited offline');

  await context.setOffline(false);
  await expect(page.getByTestId('toast').filter({ hasText: 'Back online - saving your changes' })).toBeVisible();
  for (const [pfa, field] of [['PFA-00011', 'notes'], ['PFA-00012', 'notes'], ['PFA-00013', 'monthlyRate']]) {
    await expect(cell(page, pfa, field)).toHaveClass(/drafted/);
  }
  await expect(page.getByTestId('banner-headline')).toHaveText('3 draft(s) not committed');

  // The server holds exactly these three drafts, once each, with the values typed.
  const drafts = await page.request.get(`/api/orgs/${ORG}/records?modified=true&pageSize=100`);
  expect(drafts.status()).toBe(200);
  const items = (await drafts.json()).items as { pfaId: string; draft?: { changes: Record<string, unknown> } }[];
  expect(items.map((r) => [r.pfaId, r.draft?.changes])).toEqual([
    ['PFA-00011', { notes: 'edited before the outage' }],
    ['PFA-00012', { notes: 'edited offline' }],
    ['PFA-00013', { monthlyRate: 2750 }],
  ]);
  // After a reload the drafts come from the server and nothing is pending any more.
  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId('banner-headline')).toHaveText('3 draft(s) not committed');
  await expectCellValue(page, 'PFA-00012', 'notes', 'edited offline');
  await expect(cell(page, 'PFA-00012', 'notes')).not.toHaveClass(/pending/);
  // Offline, Chromium may report the socket it could not reopen; nothing else may fail.
  expect(consoleErrors.every((e) => /WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED/.test(e))).toBe(true);
  consoleErrors.length = 0;
});
