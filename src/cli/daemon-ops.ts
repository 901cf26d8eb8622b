// What the daemon does for its operators beside serving: its data
// directory made ready at start, /metrics on a listener of its own, and the
// store_* gauges kept fresh in the background.
import { access, constants, stat } from 'node:fs/promises';
import { parseAddr } from '../addr/parse.js';
import type { StoreAddrs } from '../addr/open.js';
import type { Store } from '../store/store.js';
import { UsageError } from '../util/usage.js';
import { parseHttpAddr, type HttpListenAddr } from '../server/http-listen.js';
import { makeDirs } from '../util/make-dirs.js';

export const DEFAULT_STATS_INTERVAL_S = 60;

/**
 * Creates the on-disk stores' directories now (so `fsck --data DIR` works
 * on a fresh daemon's DIR) and checks they can be written. Returns the
 * directories that cannot: the daemon then serves them read-only (e.g. a
 * `nix build` result in /nix/store).
 */
export async function prepareDataDirs(addrs: StoreAddrs): Promise<string[]> {
  const roots = fileRoots(Object.values(addrs));
  for (const root of roots) {
    try {
      await makeDirs(root);
    } catch (err) {
      throw new UsageError(`cannot create the data directory ${root}: ${(err as Error).message}; create it (writable by this user) or give another --data`);
    }
  }
  return unwritableRoots(roots);
}

function fileRoots(addrs: Iterable<string>): string[] {
  const roots = new Set<string>();
  for (const a of addrs) {
    const p = parseAddr(a);
    if (p.kind === 'file') roots.add(p.root);
  }
  return [...roots];
}

/** The on-disk stores among `addrs` this process must not write to. */
export async function unwritableStoreDirs(addrs: Iterable<string>): Promise<string[]> {
  return unwritableRoots(fileRoots(addrs));
}

async function unwritableRoots(roots: string[]): Promise<string[]> {
  const readOnly: string[] = [];
  for (const root of roots) {
    // No write bits at all (a finished Nix store path, `--data ./result`):
    // read-only also for root, whom access() would let write.
    if (((await stat(root)).mode & 0o222) === 0) {
      readOnly.push(root);
      continue;
    }
    try {
      await access(root, constants.W_OK | constants.X_OK);
    } catch {
      readOnly.push(root);
    }
  }
  return readOnly;
}

export function metricsAddr(v: string | undefined): HttpListenAddr | undefined {
  if (v === undefined) return undefined;
  try {
    return parseHttpAddr(v);
  } catch (err) {
    throw new UsageError(`--metrics: ${(err as Error).message}`);
  }
}

export function statsIntervalMs(v: string | undefined): number {
  if (v === undefined) return DEFAULT_STATS_INTERVAL_S * 1000;
  if (!/^\d{1,7}$/.test(v)) throw new UsageError(`--stats-interval takes whole seconds (0: off), got ${JSON.stringify(v)}`);
  return Number(v) * 1000;
}

export interface MetricsOptions {
  /** A listener of its own for /metrics. */
  addr?: HttpListenAddr;
  /** Whether /metrics is served at all (on --http or `addr`). */
  served: boolean;
  authToken?: string;
  tokenRequired: boolean;
  statsIntervalMs: number;
  log(m: string): void;
}

/** Starts the metrics listener and the gauges' refresher; stop() ends both. */
export async function startDaemonMetrics(store: Store, opts: MetricsOptions): Promise<{ url?: string; stop(): Promise<void> }> {
  if (!opts.served) return { stop: async () => {} };
  const { enableProcessMetrics } = await import('../metrics/metrics.js');
  const { startMetricsServer } = await import('../server/metrics-endpoint.js');
  const { refreshStoreGauges } = await import('../server/store-stats-service.js');
  enableProcessMetrics();
  const server = opts.addr ? await startMetricsServer(opts.addr, { authToken: opts.authToken, tokenRequired: opts.tokenRequired }) : undefined;
  const gauges = opts.statsIntervalMs > 0 ? refreshStoreGauges(store, opts.statsIntervalMs, opts.log) : undefined;
  return {
    url: server?.url,
    async stop() {
      await gauges?.stop();
      await server?.close();
    },
  };
}
