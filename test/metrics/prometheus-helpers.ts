// A real Prometheus (Debian's package, installed by scripts/ensure-test-deps.sh)
// on loopback, scraping given targets every second, and its query API.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface Prometheus {
  url: string;
  /** An instant query's samples: labels and value. */
  query(q: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** Waits until Prometheus has a scrape of `job` taken after `afterMs`. */
  scrapedAfter(job: string, afterMs: number): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a value, giving up (with `what`) after a generous deadline: a wait, not a timing assertion. */
export async function waitFor<T>(what: string, f: () => Promise<T | undefined>, log: () => string = () => '', deadlineMs = 120_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}${last ? `: ${(last as Error).message}` : ''}\n${log()}`);
    await sleep(200);
  }
}

export async function startPrometheus(dir: string, jobs: Record<string, { target: string; authToken?: string }>): Promise<Prometheus> {
  await mkdir(join(dir, 'tsdb'), { recursive: true });
  const scrapeConfigs = Object.entries(jobs)
    .map(
      ([job, j]) =>
        `  - job_name: ${JSON.stringify(job)}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [${JSON.stringify(j.target)}]\n` +
        (j.authToken ? `    authorization:\n      credentials: ${JSON.stringify(j.authToken)}\n` : ''),
    )
    .join('');
  const config = join(dir, 'prometheus.yml');
  await writeFile(config, `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n${scrapeConfigs}`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const logOf = () => `prometheus (exit ${child.exitCode}):\n${log}`;

  const api = async (path: string): Promise<unknown> => {
    if (child.exitCode !== null) throw new Error(logOf());
    const res = await fetch(url + path);
    const body = (await res.json()) as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.error}`);
    return body.data;
  };
  const query = async (q: string) => {
    const data = (await api(`/api/v1/query?query=${encodeURIComponent(q)}`)) as { result: { metric: Record<string, string>; value: [number, string] }[] };
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };

  await waitFor('Prometheus to be ready', async () => {
    if (child.exitCode !== null) throw new Error(logOf());
    return (await fetch(`${url}/-/ready`)).ok || undefined;
  }, logOf);

  return {
    url,
    query,
    log: logOf,
    async scrapedAfter(job, afterMs) {
      await waitFor(`a scrape of ${job} after ${new Date(afterMs).toISOString()}`, async () => {
        const r = await query(`timestamp(up{job=${JSON.stringify(job)}}) > ${afterMs / 1000}`);
        return r.length > 0 ? true : undefined;
      }, logOf);
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
