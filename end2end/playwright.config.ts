// Playwright runs against the real pfa-sync binary (E2E_BIN, built site in E2E_SITE_ROOT) in
// Debian's /usr/bin/chromium. Every spec file starts its own server with a fresh SQLite
// database on a free loopback port (tests/support/server.ts: `useServer`), the specs that
// inject PEMS faults start the simulator as its own process (`useSimulator`), and
// cluster.spec.ts runs two instances on a throwaway PostgreSQL (`usePostgres`).
import { defineConfig, devices } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  use: {
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        launchOptions: {
          executablePath: '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
          ],
        },
      },
    },
  ],
});
