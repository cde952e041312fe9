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
 * A cell shows its value as text; a click opens its editor (Enter, F2 or Space do the same) and Enter
 * closes it (Tab would move between the parts of a date).
 */
export async function editCell(page: import('@playwright/test').Page, pfa: string, field: string, value: string) {
  const target = cell(page, pfa, field);
  const input = target.locator('input');
  if ((await input.count()) === 0) await target.click();
  await input.fill(value);
  await input.press('Enter');
}

/**
 * What a grid cell shows, run in the page (`cell(...).evaluate(shownValue)`): its editor's value
 * while it is open, else the cell's own text (its marks and messages are elements of their own).
 */
export function shownValue(td: Element): string {
  const input = td.querySelector('input');
  if (input) return input.value;
  return [...td.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join('');
}

/** Waits until a grid cell shows `value` (its text, or its editor's value while it is open). */
export async function expectCellValue(page: import('@playwright/test').Page, pfa: string, field: string, value: string) {
  await expect.poll(() => cell(page, pfa, field).evaluate(shownValue, undefined, { timeout: 1_000 }).catch(() => null)).toBe(value);
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

/** `PFA-00042` for 42. */
export function pfa(n: number): string {
  return `PFA-${String(n).padStart(5, '0')}`;
}

/** `count` record ids from `pfa(from)` on. */
export function pfaRange(from: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => pfa(from + i));
}

/** Signs in, opens an org's records and waits until they are listed and the socket is up. */
export async function openOrg(page: import('@playwright/test').Page, user: string, org = 'org-rio') {
  await signIn(page, user);
  await page.goto(`/orgs/${org}`);
  await waitForHydration(page);
  await expect(page.getByTestId('record-count')).toHaveText('2000 records');
  await expect(page.getByTestId('ws-badge')).toHaveAttribute('data-connected', 'true');
}

/** The grid cell with a record's version. */
export function versionCell(page: import('@playwright/test').Page, pfaId: string) {
  return page.locator(`[data-testid=record-row][data-pfa="${pfaId}"] td`).last();
}

/** A job's row on the sync-queue dashboard. */
export function jobRow(page: import('@playwright/test').Page, jobId: string) {
  return page.locator(`[data-testid=job-row][data-job-id="${jobId}"]`);
}

export type Draft = { pfaId: string; changes: Record<string, unknown>; reason?: string; baseVersion?: number };

/**
 * Saves drafts as the caller of `api` and commits exactly those records; answers the job.
 * `origin` is for a page's own request context (an `apiAs` client sends it already).
 */
export async function commitDrafts(
  api: APIRequestContext,
  org: string,
  drafts: Draft[],
  options: { origin?: string; reason?: string } = {},
) {
  const headers = options.origin ? { origin: options.origin } : undefined;
  const saved = await api.put(`/api/orgs/${org}/drafts`, { data: { drafts }, headers });
  expect(saved.status(), await saved.text()).toBe(200);
  const committed = await api.post(`/api/orgs/${org}/drafts/commit`, {
    data: { pfaIds: drafts.map((d) => d.pfaId), reason: options.reason },
    headers,
  });
  expect(committed.status(), await committed.text()).toBe(202);
  return (await committed.json()).job as { id: string; total: number };
}

/** Waits until a job's status is `status` (or matches it). */
export async function waitForJob(api: APIRequestContext, org: string, jobId: string, status: string | RegExp) {
  const current = async () => (await (await api.get(`/api/orgs/${org}/jobs/${jobId}`)).json()).job.status as string;
  if (typeof status === 'string') await expect.poll(current, { timeout: 20_000 }).toBe(status);
  else await expect.poll(current, { timeout: 20_000 }).toMatch(status);
}
