// Every page at a desktop (1280x800) and a phone (375x800) size: nothing overflows the page
// sideways (wide tables scroll inside their own box), the main controls are on screen, and a
// screenshot of each is kept in <output folder>/screens/ (test-results/screens/ by default) for people to look at.
import type { Page } from '@playwright/test';
import { join } from 'node:path';
import { test, expect, waitForHydration, signIn, apiAs, commitDrafts, waitForJob, type Draft } from './fixtures';
import { useServer } from './support/server';

const app = useServer();
const ORG = 'org-rio';
const SIZES = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 375, height: 800 },
];

async function check(page: Page, name: string, size: string) {
  await waitForHydration(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${name} at ${size} overflows sideways by ${overflow}px`).toBeLessThanOrEqual(0);
  await page.screenshot({ path: join(test.info().project.outputDir, 'screens', `${size}-${name}.png`), fullPage: true });
}

test.beforeAll(async () => {
  // One finished job and one open conflict, so the queue and the dialog have something to show.
  const api = await apiAs(app.baseURL, 'planner');
  const commit = async (drafts: Draft[]) =>
    waitForJob(api, ORG, (await commitDrafts(api, ORG, drafts)).id, /^completed/);
  await commit([{ pfaId: 'PFA-00051', changes: { notes: 'first change', monthlyRate: 1200 }, reason: 'New quote' }]);
  await commit([{ pfaId: 'PFA-00051', changes: { notes: 'stale change' }, baseVersion: 1 }]);
  await api.dispose();
});

for (const size of SIZES) {
  test(`every page fits a ${size.name} screen (${size.width}x${size.height})`, async ({ page }) => {
    test.setTimeout(60_000);
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.goto('/');
    await check(page, 'home', size.name);
    await page.goto('/login');
    await check(page, 'login', size.name);
    await signIn(page, 'planner');
    await check(page, 'orgs', size.name);

    await page.goto(`/orgs/${ORG}`);
    await expect(page.getByTestId('record-count')).toHaveText('2000 records');
    await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
    await expect(page.getByTestId('save-draft')).toBeInViewport();
    await expect(page.getByTestId('sync-banner')).toBeInViewport();
    await check(page, 'org', size.name);

    await page.goto(`/orgs/${ORG}/jobs`);
    await expect(page.getByTestId('job-row').first()).toBeVisible();
    await check(page, 'jobs', size.name);
    await page.locator('[data-testid=conflict-item] [data-testid=conflict-resolve]').first().click();
    await expect(page.getByTestId('conflict-record')).toHaveText('PFA-00051');
    await expect(page.getByTestId('conflict-use-mine')).toBeInViewport();
    await check(page, 'conflict-dialog', size.name);
    await page.keyboard.press('Escape');

    await page.goto(`/orgs/${ORG}/records/PFA-00051`);
    await expect(page.getByTestId('version')).toHaveCount(2);
    await check(page, 'history', size.name);
  });
}
