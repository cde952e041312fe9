// A page fixture that fails the test on any console error or uncaught exception.
import { test as base, expect } from '@playwright/test';

export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: [
    async ({ page }, use) => {
      const errors: string[] = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(msg.text());
      });
      page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
      await use(errors);
      expect(errors, 'console errors').toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** Waits until the WebAssembly bundle has hydrated the server-rendered page. */
export async function waitForHydration(page: import('@playwright/test').Page) {
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
}

/** Signs in through the /login form (demo password) and lands on /orgs. */
export async function signIn(page: import('@playwright/test').Page, user: string) {
  await page.goto('/login');
  await waitForHydration(page);
  await page.getByTestId('login-username').fill(user);
  await page.getByTestId('login-password').fill('pfa-demo');
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(/\/orgs$/);
}
