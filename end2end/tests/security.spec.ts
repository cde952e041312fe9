// Security as the browser sees it: a viewer gets no save or commit controls and the server
// refuses what a crafted request tries; markup typed into a record is shown as text everywhere.
import { test, expect, waitForHydration, signIn, apiAs, cell, expectCellValue, commitDrafts, waitForJob, openOrg } from './fixtures';
import { useServer } from './support/server';

useServer();
const ORG = 'org-rio';

test('a viewer has no save or commit controls, and crafted requests are refused', async ({ page, baseURL, consoleErrors }) => {
  await openOrg(page, 'viewer');
  await expect(page.getByTestId('my-role')).toHaveText('Read only: viewers cannot edit');
  await expect(page.getByTestId('save-draft')).toHaveCount(0);
  await expect(page.getByTestId('commit')).toHaveCount(0);
  await expect(page.getByTestId('discard')).toHaveCount(0);
  // Cells are plain text for a viewer: they take no focus (an editor's open with a key) and
  // hold no input.
  await expect(cell(page, 'PFA-00001', 'notes')).not.toHaveAttribute('tabindex');
  await expect(cell(page, 'PFA-00001', 'notes').locator('input, button')).toHaveCount(0);
  await expect(cell(page, 'PFA-00001', 'notes')).not.toBeEmpty();

  // The same requests the controls would send, crafted in the viewer's page with their session.
  const answers = await page.evaluate(async (org) => {
    const call = async (method: string, path: string, body: unknown) =>
      (await fetch(path, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).status;
    return {
      save: await call('PUT', `/api/orgs/${org}/drafts`, { drafts: [{ pfaId: 'PFA-00001', changes: { notes: 'viewer was here' } }] }),
      commit: await call('POST', `/api/orgs/${org}/drafts/commit`, { pfaIds: ['PFA-00001'] }),
      publish: await call('POST', `/api/orgs/${org}/events`, { type: 'SYNC_SUCCESS', jobId: 'x', message: 'forged' }),
      rollback: await call('POST', `/api/orgs/${org}/records/PFA-00001/rollback`, { version: 1, reason: 'viewer rolling back' }),
      otherOrg: await call('PUT', `/api/orgs/org-portarthur/drafts`, { drafts: [{ pfaId: 'PFA-00001', changes: { notes: 'x' } }] }),
    };
  }, ORG);
  expect(answers).toEqual({ save: 403, commit: 403, publish: 403, rollback: 403, otherOrg: 404 });

  // A cross-site form post with the planner's cookie is refused (Origin check) and changes nothing.
  const planner = await apiAs(baseURL!, 'planner');
  const forged = await planner.put(`/api/orgs/${ORG}/drafts`, {
    data: { drafts: [{ pfaId: 'PFA-00001', changes: { notes: 'csrf' } }] },
    headers: { origin: 'https://evil.example' },
  });
  expect(forged.status()).toBe(403);
  const record = await (await planner.get(`/api/orgs/${ORG}/records/PFA-00001`)).json();
  expect(record.draft).toBeUndefined();
  expect(record.notes).not.toContain('viewer was here');
  await planner.dispose();

  // Chromium reports each refused fetch; those are the ones provoked above.
  expect(consoleErrors.every((e) => /status of 40[34]/.test(e))).toBe(true);
  consoleErrors.length = 0;
});

test('a record field containing markup is shown as text in the grid, the timeline and the dialog', async ({ page, baseURL }) => {
  const markup = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">';
  const planner = await apiAs(baseURL!, 'planner');
  const job = await commitDrafts(planner, ORG, [{ pfaId: 'PFA-00015', changes: { notes: markup }, reason: '<b>bold</b> reason' }]);
  await waitForJob(planner, ORG, job.id, 'completed');

  await planner.dispose();

  await signIn(page, 'viewer');
  await page.goto(`/orgs/${ORG}/records/PFA-00015`);
  await waitForHydration(page);
  await expect(page.getByTestId('version').first().getByTestId('diff-line')).toContainText(markup);
  await expect(page.getByTestId('version').first().getByTestId('version-reason')).toHaveText('<b>bold</b> reason');
  expect(await page.getByTestId('versions').locator('img, script, b').count()).toBe(0);

  await page.goto(`/orgs/${ORG}`);
  await waitForHydration(page);
  await expectCellValue(page, 'PFA-00015', 'notes', markup);
  // Nothing ran and no element was made from the text.
  expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
  expect(await page.locator('img[src=x]').count()).toBe(0);
});
