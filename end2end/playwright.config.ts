// Playwright runs against the real pfa-sync binary (E2E_BIN) with a fresh temporary SQLite
// database on a free loopback port, in Debian's /usr/bin/chromium.
import { defineConfig, devices } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const bin = process.env.E2E_BIN ?? resolve(__dirname, '../target/debug/pfa-sync');
const siteRoot = process.env.E2E_SITE_ROOT ?? resolve(__dirname, '../target/site');

// Playwright evaluates this file in every worker: the first evaluation picks the port and the
// database folder and hands them to the others through the environment.
if (!process.env.E2E_PORT) {
  process.env.E2E_PORT = execFileSync(process.execPath, [
    '-e',
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close();});",
  ]).toString();
}
if (!process.env.E2E_DB_DIR) {
  process.env.E2E_DB_DIR = mkdtempSync(join(tmpdir(), 'pfa-sync-e2e-'));
}
const port = Number(process.env.E2E_PORT);
const baseURL = `http://127.0.0.1:${port}`;

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
    baseURL,
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
  webServer: {
    command: `"${bin}" serve --addr 127.0.0.1:${port} --database-url "sqlite://${process.env.E2E_DB_DIR}/e2e.db" --mode dev --site-root "${siteRoot}"`,
    url: `${baseURL}/health`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
  },
});
