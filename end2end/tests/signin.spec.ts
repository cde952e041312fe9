// Signing in before the page is interactive: with JavaScript off, and with the WebAssembly held
// back, the sign-in form posts itself to the server, which sets the session and redirects; the
// password never appears in a URL.
import type { Page } from '@playwright/test';
import { test, expect, waitForHydration } from './fixtures';
import { useServer } from './support/server';

useServer();

/** Every URL the page requests or navigates to. */
function watchUrls(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('framenavigated', (f) => urls.push(f.url()));
  return urls;
}

async function submit(page: Page, user: string, password: string) {
  await page.getByTestId('login-username').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the sign-in form posts, lands on the organizations page, and no URL carries the password', async ({ page }) => {
    const urls = watchUrls(page);
    await page.goto('/login');
    await submit(page, 'planner', 'wrong-password');
    await expect(page).toHaveURL(/\/login\?error=invalid$/);
    await expect(page.getByTestId('login-error')).toHaveText('wrong username or password');

    await submit(page, 'planner', 'pfa-demo');
    await expect(page).toHaveURL(/\/orgs$/);
    const cookies = await page.context().cookies();
    expect(cookies.map((c) => c.name)).toContain('pfa_session');
    expect(urls.filter((u) => u.includes('pfa-demo') || u.includes('wrong-password') || u.includes('password='))).toEqual([]);
  });
});

test('before the WebAssembly has loaded, the form posts itself and the next page hydrates', async ({ page }) => {
  const urls = watchUrls(page);
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/*.wasm', async (route) => {
    await held;
    await route.continue().catch(() => {});
  });
  await page.goto('/login');
  await submit(page, 'planner', 'pfa-demo');
  await expect(page).toHaveURL(/\/orgs$/);
  release();
  await waitForHydration(page);
  await expect(page.getByTestId('nav-user')).toContainText('planner');
  expect(urls.filter((u) => u.includes('pfa-demo') || u.includes('password='))).toEqual([]);
});
