// A page fixture that fails the test on any console error or uncaught exception.
import { test as base, expect, request as playwrightRequest, type APIRequestContext } from '@playwright/test';

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
export async function signIn(page: import('@playwright/test').Page, user: string, password = 'pfa-demo') {
  await page.goto('/login');
  await waitForHydration(page);
  await page.getByTestId('login-username').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(/\/orgs$/);
}

/** The grid cell of one record's field. */
export function cell(page: import('@playwright/test').Page, pfa: string, field: string) {
  return page.locator(`[data-testid=record-row][data-pfa="${pfa}"] td[data-field="${field}"]`);
}

/**
 * Types a value into a grid cell and confirms it, as a planner does (the edit is then pending).
 * A cell shows its value as text; a click opens its editor (Enter or F2 do the same) and Enter
 * closes it (Tab would move between the parts of a date).
 */
export async function editCell(page: import('@playwright/test').Page, pfa: string, field: string, value: string) {
  const target = cell(page, pfa, field);
  const input = target.locator('input');
  if ((await input.count()) === 0) await target.locator('.cell-value').click();
  await input.fill(value);
  await input.press('Enter');
}

/** Waits until a grid cell shows `value` (its text, or its editor's value while it is open). */
export async function expectCellValue(page: import('@playwright/test').Page, pfa: string, field: string, value: string) {
  const shown = (td: Element) => {
    const input = td.querySelector('input');
    return input ? input.value : td.querySelector('.cell-value')?.textContent ?? null;
  };
  await expect.poll(() => cell(page, pfa, field).evaluate(shown, undefined, { timeout: 1_000 }).catch(() => null)).toBe(value);
}

/** An API client signed in as a demo user, apart from any page's session. */
export async function apiAs(baseURL: string, user: string, password = 'pfa-demo'): Promise<APIRequestContext> {
  const api = await playwrightRequest.newContext({ baseURL, extraHTTPHeaders: { origin: baseURL } });
  const login = await api.post('/api/auth/login', { data: { username: user, password } });
  expect(login.status(), `sign-in of ${user}`).toBe(200);
  return api;
}

/** Publishes one event to an org through the API, as `user` (an admin). */
export async function publishAs(page: import('@playwright/test').Page, user: string, org: string, event: Record<string, unknown>) {
  const api = await apiAs(new URL(page.url()).origin, user);
  const published = await api.post(`/api/orgs/${org}/events`, { data: event });
  expect(published.status(), await published.text()).toBe(202);
  await api.dispose();
}
