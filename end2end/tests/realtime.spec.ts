import { test, expect, waitForHydration, signIn, apiAs } from './fixtures';
import { useServer } from './support/server';

useServer();

test('a planner signs in, opens an organization and sees live sync events with the dev WS badge', async ({ page, baseURL }) => {
  const consoleLines: string[] = [];
  page.on('console', (msg) => consoleLines.push(msg.text()));
  await signIn(page, 'planner');
  await expect(page.getByTestId('me-username')).toHaveText('planner');
  await expect(page.getByTestId('nav-user')).toHaveText('planner');
  await expect(page.getByTestId('nav-sign-in')).toHaveCount(0);
  await page.getByTestId('org-org-rio').click();
  await expect(page).toHaveURL(/\/orgs\/org-rio$/);

  const badge = page.getByTestId('ws-badge');
  await expect(badge).toHaveAttribute('data-connected', 'true');
  await expect(badge).toHaveAttribute('aria-label', 'WebSocket connected');
  const wsUrl = baseURL!.replace('http', 'ws') + '/api/ws/sync/org-rio';
  expect(consoleLines).toContain(`[WebSocket] Connecting to: ${wsUrl}`);
  expect(consoleLines).toContain('[WebSocket] Connected to sync status updates');

  // An admin publishes through the API, from a client of their own (signing in within the
  // planner's browser would end the planner's session); the planner's page shows it at once.
  const admin = await apiAs(baseURL!, 'admin');
  const published = await admin.post('/api/orgs/org-rio/events', {
    data: { type: 'SYNC_SUCCESS', jobId: 'e2e-job', pfaId: 'PFA-00001', message: 'Successfully synced PFA-00001' },
  });
  expect(published.status()).toBe(202);
  await admin.dispose();
  await expect(page.getByTestId('last-event')).toHaveText('Last event: SYNC_SUCCESS Successfully synced PFA-00001');
  await expect(page.getByTestId('toast').filter({ hasText: 'PFA-00001 synced!' })).toBeVisible();
});

test('a viewer only sees the organizations they belong to, and another org refuses the socket', async ({ page, consoleErrors }) => {
  await signIn(page, 'viewer');
  await expect(page.getByTestId('org-org-rio')).toBeVisible();
  await expect(page.getByTestId('org-org-portarthur')).toHaveCount(0);
  const attempts: string[] = [];
  page.on('console', (m) => {
    if (m.text().startsWith('[WebSocket] Connecting to:')) attempts.push(m.text());
  });
  await page.goto('/orgs/org-portarthur');
  await waitForHydration(page);
  await expect(page.getByTestId('ws-stopped')).toHaveText('You are not a member of this organization');
  // 4403 is terminal: no retry storm (the first reconnect would come after about a second).
  await page.waitForTimeout(3000);
  expect(attempts).toHaveLength(1);
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('aria-label', 'WebSocket disconnected');
  // The records request of the foreign org is refused with 404 (no existence leak).
  expect(consoleErrors.every((e) => e.includes('404 (Not Found)'))).toBe(true);
  consoleErrors.length = 0;
});

test('signing out from the top bar ends the session and the socket', async ({ page }) => {
  await signIn(page, 'planner');
  await page.getByTestId('org-org-rio').click();
  const badge = page.getByTestId('ws-badge');
  await expect(badge).toHaveAttribute('data-connected', 'true');
  await page.getByTestId('nav-sign-out').click();
  await expect(page).toHaveURL(/\/login$/);
  await waitForHydration(page);
  await expect(page.getByTestId('nav-sign-in')).toBeVisible();
  await expect(page.getByTestId('nav-user')).toHaveCount(0);
  expect((await page.request.get('/api/auth/me')).status()).toBe(401);
});
