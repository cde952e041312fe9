// Prod mode: no WS badge and no demo users; a real account signs in and still gets live events.
import { test, expect, waitForHydration } from './fixtures';
import { useServer } from './support/server';

const app = useServer({ mode: 'prod' });

test('prod mode has no WS badge and no demo users', async ({ page, baseURL, consoleErrors }) => {
  // No demo account exists: the demo credentials are refused like any wrong password.
  const demo = await page.request.post('/api/auth/login', {
    data: { username: 'planner', password: 'pfa-demo' },
    headers: { origin: baseURL! },
  });
  expect(demo.status()).toBe(401);

  await page.goto('/login');
  await waitForHydration(page);
  await page.getByTestId('login-username').fill('admin');
  await page.getByTestId('login-password').fill('pfa-demo');
  await page.getByTestId('login-submit').click();
  await expect(page.getByTestId('login-error')).toBeVisible();
  expect(consoleErrors.every((e) => e.includes('401 (Unauthorized)'))).toBe(true);
  consoleErrors.length = 0;

  // An operator creates a real account.
  app.cli(['user', 'add', 'ana', '--password', 'correct-horse-1', '--member', 'org-rio:admin']);
  await page.getByTestId('login-username').fill('ana');
  await page.getByTestId('login-password').fill('correct-horse-1');
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(/\/orgs$/);
  // No badge to watch in prod: the test watches the socket's CONNECTED frame instead.
  const connected = new Promise<void>((resolve) =>
    page.on('websocket', (ws) =>
      ws.on('framereceived', (f) => String(f.payload).includes('"type":"CONNECTED"') && resolve()),
    ),
  );
  await page.getByTestId('org-org-rio').click();
  await expect(page).toHaveURL(/\/orgs\/org-rio$/);
  await expect(page.locator('body')).toHaveAttribute('data-mode', 'prod');
  // No demo data either.
  await expect(page.getByTestId('record-count')).toHaveText('0 records');

  // The banner is there, the badge is not, and the socket works all the same.
  await expect(page.getByTestId('sync-banner')).toBeVisible();
  await expect(page.getByTestId('ws-badge')).toHaveCount(0);
  await connected;
  const published = await page.request.post('/api/orgs/org-rio/events', {
    data: { type: 'SYNC_SUCCESS', jobId: 'prod-job', message: 'Sync completed in prod' },
    headers: { origin: baseURL! },
  });
  expect(published.status()).toBe(202);
  await expect(page.getByTestId('last-event')).toHaveText('Last event: SYNC_SUCCESS Sync completed in prod');
  await expect(page.getByTestId('ws-badge')).toHaveCount(0);
});
