// PEMS outages during a commit, with the simulator as its own process answering 503 (with
// Retry-After: the seconds left) for every request while the outage lasts.
import type { Page } from '@playwright/test';
import { test, expect, waitForHydration, signIn, apiAs, commitDrafts, jobRow, pfaRange } from './fixtures';
import { useServer, useSimulator } from './support/server';

const ORG = 'org-rio';

/** The planner's sync queue, live. */
async function openQueue(page: Page) {
  await signIn(page, 'planner');
  await page.goto(`/orgs/${ORG}/jobs`);
  await waitForHydration(page);
  await expect(page.getByTestId('jobs-live')).toHaveAttribute('data-connected', 'true');
}

/** The planner commits a note on each record; answers the job id. */
async function commit(baseURL: string, records: string[]): Promise<string> {
  const api = await apiAs(baseURL, 'planner');
  const job = await commitDrafts(api, ORG, records.map((pfaId) => ({ pfaId, changes: { notes: `outage ${pfaId}` } })));
  await api.dispose();
  return job.id;
}

test.describe('an outage shorter than the retries', () => {
  const pems = useSimulator();
  useServer({ pems });

  test('PEMS answers 503 for 20 seconds: the queue shows the retries, then the job completes', async ({ page, baseURL }) => {
    test.setTimeout(90_000);
    await openQueue(page);
    await pems.setFaults({ outageSecs: 20 });
    const records = pfaRange(301, 5);
    const job = await commit(baseURL!, records);
    const row = jobRow(page, job);
    await expect(row).toHaveAttribute('data-status', 'running');
    // Every record met the outage once and waits for it to end (PEMS's Retry-After).
    await expect(row.getByTestId('job-counts')).toHaveText('0 / 0 / 0 / 5');
    await expect(row.getByTestId('job-percent')).toHaveText('0%');
    await expect(row).toHaveAttribute('data-status', 'completed', { timeout: 40_000 });
    await expect(row.getByTestId('job-counts')).toHaveText('5 / 0 / 0 / 5');
    const stats = await pems.stats();
    for (const pfa of records) expect(stats.byRecord[`RIO/${pfa}`], pfa).toBe(1);
  });
});

test.describe('an outage longer than the attempts', () => {
  const pems = useSimulator();
  // Two attempts, at most a second apart: a 20-second outage outlasts them.
  useServer({ pems, args: ['--sync-max-attempts', '2', '--retry-base-ms', '200', '--retry-cap-ms', '1000'] });

  test('the job fails with a retry action, and the retry succeeds once PEMS is back', async ({ page, baseURL }) => {
    test.setTimeout(60_000);
    await openQueue(page);
    await pems.setFaults({ outageSecs: 20 });
    const records = pfaRange(401, 3);
    const job = await commit(baseURL!, records);
    const row = jobRow(page, job);
    await expect(row).toHaveAttribute('data-status', 'failed', { timeout: 20_000 });
    await expect(row.getByTestId('job-counts')).toHaveText('0 / 0 / 3 / 3');
    await row.getByTestId('job-toggle').click();
    const items = page.getByTestId('job-detail').getByTestId('job-item');
    await expect(items).toHaveCount(3);
    await expect(items.first()).toContainText('PEMS_UNAVAILABLE');

    // PEMS comes back; the planner retries from the queue.
    await pems.resetFaults();
    await row.getByTestId('job-retry').click();
    await expect(page.getByTestId('command-result')).toHaveText(`retry job ${job}: now running`);
    await expect(row).toHaveAttribute('data-status', 'completed', { timeout: 20_000 });
    await expect(row.getByTestId('job-counts')).toHaveText(/^3 \/ 0 \/ 0 \/ \d+$/);
    const stats = await pems.stats();
    for (const pfa of records) expect(stats.byRecord[`RIO/${pfa}`], pfa).toBe(1);
  });
});
