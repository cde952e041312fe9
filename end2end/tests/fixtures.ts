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

/** The grid cell of one record's field. */
export function cell(page: import('@playwright/test').Page, pfa: string, field: string) {
  return page.locator(`[data-testid=record-row][data-pfa="${pfa}"] td[data-field="${field}"]`);
}

/** Types a value into a grid cell and leaves it, as a planner does (the edit is then pending). */
export async function editCell(page: import('@playwright/test').Page, pfa: string, field: string, value: string) {
  const input = cell(page, pfa, field).locator('input');
  await input.fill(value);
  await input.press('Tab');
}

/** Waits until a grid cell shows `value`. */
export async function expectCellValue(page: import('@playwright/test').Page, pfa: string, field: string, value: string) {
  await expect(cell(page, pfa, field).locator('input')).toHaveValue(value);
}
