// Servers the specs own: the real pfa-sync binary on a free loopback port with a fresh SQLite
// database in a temp folder, and optionally the PEMS simulator as its own process (so that a
// spec can inject faults and remote edits, and restart the app without losing PEMS state), or
// several instances on one throwaway PostgreSQL (`usePostgres`).
//
//   const pems = useSimulator();                       // optional, declare it first
//   const app = useServer({ mode: 'dev', pems });      // sets baseURL for every test of the file
//   ... await app.restart(); await pems.setFaults({ outageSecs: 20 });
import { test } from '@playwright/test';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BIN = process.env.E2E_BIN ?? resolve(__dirname, '../../../target/debug/pfa-sync');
export const SITE_ROOT = process.env.E2E_SITE_ROOT ?? resolve(__dirname, '../../../target/site');
/** Whether the specs run against the release build (`make test-e2e-release`). */
export const RELEASE = process.env.E2E_BUILD === 'release';

/** A free loopback port, picked synchronously so that `test.use({ baseURL })` can name it. */
export function freePort(): number {
  return Number(
    execFileSync(process.execPath, [
      '-e',
      "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close();});",
    ]).toString(),
  );
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

/** Signals the process, waits for it to end, and kills it after `graceMs`. */
async function terminate(child: ChildProcess | undefined, signal: NodeJS.Signals, graceMs = 15_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}

/**
 * The command line that runs `command` as a background process (Linux's SCHED_IDLE, through
 * `chrt --idle 0`): it gets a CPU only when nothing else wants one.
 */
export function inBackground(command: string, args: string[]): [string, string[]] {
  return ['chrt', ['--idle', '0', command, ...args]];
}

export type ServerOptions = {
  /** dev: demo users, demo data and the WS badge (the default); prod: none of them. */
  mode?: 'dev' | 'prod';
  /** Write to this simulator instead of the app's in-process one. */
  pems?: Simulator;
  /** More `serve` flags, e.g. ['--pems-rate', '500']. */
  args?: string[];
  /** The database (a URL, or a function giving it once it exists); a SQLite file by default. */
  database?: string | (() => string);
  /**
   * Run the server as a background process (`inBackground`). A spec that measures the page's
   * frames runs the server below the browser, which on a real deployment it does not share a
   * machine with.
   */
  background?: boolean;
};

/** The app, one process at a time on a fixed port and database, so it can be restarted. */
export class AppServer {
  readonly port = freePort();
  readonly baseURL = `http://127.0.0.1:${this.port}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'pfa-sync-e2e-'));
  readonly logPath = join(this.dir, 'server.log');
  private child?: ChildProcess;
  private log?: WriteStream;
  private starts = 0;

  constructor(private readonly options: ServerOptions = {}) {}

  /** The database URL: the option's, or the SQLite file in the server's folder. */
  get databaseUrl(): string {
    const db = this.options.database;
    if (typeof db === 'function') return db();
    return db ?? `sqlite://${this.dir}/app.db`;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start() {
    if (this.running) throw new Error('the server is already running');
    this.starts += 1;
    const args = [
      'serve',
      '--addr', `127.0.0.1:${this.port}`,
      '--database-url', this.databaseUrl,
      '--mode', this.options.mode ?? 'dev',
      '--site-root', SITE_ROOT,
      ...(this.options.pems ? ['--pems-url', this.options.pems.url] : []),
      ...(this.options.args ?? []),
    ];
    this.log ??= createWriteStream(this.logPath, { flags: 'a' });
    this.log.write(`--- start ${this.starts}: ${BIN} ${args.join(' ')}\n`);
    const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' };
    for (const k of Object.keys(env)) if (k.startsWith('PFA_SYNC_') || k.startsWith('LEPTOS_')) delete env[k];
    const [command, argv] = this.options.background ? inBackground(BIN, args) : [BIN, args];
    const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    this.child = child;
    try {
      await until(`${this.baseURL}/health`, 60_000, async () => {
        if (!this.running) throw new Error('exited');
        return (await fetch(`${this.baseURL}/health`)).ok;
      });
    } catch (e) {
      throw new Error(`the server did not start (${e}); its log:\n${this.logTail()}`);
    }
  }

  /** Graceful stop (SIGTERM, as an operator or an orchestrator does). */
  async stop() {
    await terminate(this.child, 'SIGTERM');
  }

  /** A crash: SIGKILL, nothing flushed or announced. */
  async kill() {
    await terminate(this.child, 'SIGKILL');
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  /** Runs a management subcommand against this server's database, e.g. `user add ...`. */
  cli(args: string[]): string {
    return execFileSync(BIN, [...args, '--database-url', this.databaseUrl], {
      env: { ...process.env, RUST_LOG: 'warn' },
    }).toString();
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

export type Faults = {
  latencyMs?: number;
  errorRate?: number;
  errorStatus?: number;
  failNext?: number[];
  outageSecs?: number;
  outageMs?: number;
  seed?: number;
};

/** `pfa-sync pems-sim` as its own process, driven through its fault-injection API. */
export class Simulator {
  private child?: ChildProcess;
  private base?: string;

  get url(): string {
    if (!this.base) throw new Error('the simulator has not started');
    return this.base;
  }

  async start() {
    const child = spawn(BIN, ['pems-sim', '--addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let out = '';
    this.base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pems-sim did not start: ${out}`)), 30_000);
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once('exit', (code) => reject(new Error(`pems-sim exited with ${code}: ${out}`)));
    });
    child.stdout!.resume();
    child.stderr!.resume();
  }

  async stop() {
    await terminate(this.child, 'SIGTERM');
  }

  private async call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${this.url}/api/pems/${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  setFaults(faults: Faults) {
    return this.call('PUT', '_faults', faults);
  }

  resetFaults() {
    return this.call('DELETE', '_faults');
  }

  /** Someone edits a record directly in PEMS, on top of `baseVersion`. */
  remoteEdit(organizationCode: string, pfaId: string, changes: Record<string, unknown>, baseVersion: number) {
    return this.call('POST', '_faults/remote-edit', { organizationCode, pfaId, changes, baseVersion });
  }

  /** `{ writes, byRecord: { "ORG/PFA": n }, requests }`. */
  stats(): Promise<{ writes: number; byRecord: Record<string, number>; requests: number }> {
    return this.call('GET', '_stats');
  }
}

/** `pfa-sync throwaway-postgres`: a PostgreSQL cluster of its own, removed when stopped. */
export class Postgres {
  private child?: ChildProcess;
  private database?: string;

  get url(): string {
    if (!this.database) throw new Error('PostgreSQL has not started');
    return this.database;
  }

  async start() {
    const child = spawn(BIN, ['throwaway-postgres'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    this.database = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`throwaway-postgres did not start: ${err}`)), 60_000);
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /^(postgres:\/\/\S+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once('exit', (code) => reject(new Error(`throwaway-postgres exited with ${code}: ${err}`)));
    });
    child.stdout!.resume();
  }

  async stop() {
    await terminate(this.child, 'SIGTERM');
  }
}

/** A throwaway PostgreSQL for every test of the file; declare it before the servers on it. */
export function usePostgres(): Postgres {
  const pg = new Postgres();
  test.beforeAll(async () => {
    test.setTimeout(90_000);
    await pg.start();
  });
  test.afterAll(async () => pg.stop());
  return pg;
}

/** A simulator process for every test of the file; declare it before `useServer`. */
export function useSimulator(): Simulator {
  const sim = new Simulator();
  test.beforeAll(async () => sim.start());
  test.afterAll(async () => sim.stop());
  return sim;
}

/** A fresh server (own database) for the tests of the file, which get its URL as `baseURL`. */
export function useServer(options: ServerOptions = {}): AppServer {
  const server = new AppServer(options);
  test.use({ baseURL: server.baseURL });
  test.beforeAll(async () => {
    test.setTimeout(90_000);
    await server.start();
  });
  test.afterAll(async () => server.stop());
  return server;
}
