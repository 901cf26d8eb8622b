import { parse, UsageError, type Command } from '../util/usage.js';
import { metricsAddr } from './daemon-ops.js';
import { effectiveConfig, hookStore, spoolDir, type EffectiveConfig } from '../addr/config.js';
import { openConfiguredStore, readSigningKey, sizeFormulaFor } from './copy-run.js';
import { drainOnce, watchSpool } from '../upload/drain.js';
import type { Store } from '../addr/open.js';
import type { SizeFormula } from '../castore/directory.js';
import { isKind } from '../castore/errors.js';

const HELP = `Usage: nix-castore drain [--spool DIR] [--store ADDR] [--watch [--metrics ADDR]]

Uploads what 'nix-castore hook --mode queue' queued: each entry's output
paths and their closures. An entry is removed once stored; one that fails is
kept and retried later with backoff (never dropped), without holding up the
others.

Options:
      --spool DIR   the queue (else $NIX_CASTORE_SPOOL, else
                    $XDG_STATE_HOME/nix-castore/spool)
      --store ADDR  where to upload (else $NIX_CASTORE_STORE, the usual
                    BLOB_SERVICE_ADDR… / config file / grpc+http://[::1]:8000)
      --watch       keep running and upload new entries as they arrive
      --metrics ADDR with --watch: serve the queue's metrics (Prometheus,
                    GET /metrics) on host:port, [v6]:port or a bare port
                    (127.0.0.1:port)
  -h, --help        show this help

A daemon started with --auth-token-file takes writes only with its token:
set NIX_CASTORE_AUTH_TOKEN_FILE to a file holding it.

Exit status: 0 when the queue is empty, 1 when entries remain (failed or
waiting for a retry), 2 bad usage (a flag, a token file that cannot be read).`;

export const drainCommand: Command = {
  name: 'drain',
  summary: 'upload what the post-build hook queued',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, { spool: { type: 'string' }, store: { type: 'string' }, watch: { type: 'boolean' }, metrics: { type: 'string' } });
    if (values.metrics !== undefined && !values.watch) throw new UsageError('--metrics goes with --watch (a single drain ends before anyone could scrape it)');
    const metricsAt = metricsAddr(values.metrics);
    const dir = values.spool ?? spoolDir();
    const config = await effectiveConfig({ store: values.store ?? hookStore() });
    const signingKey = config.signKeyFile ? await readSigningKey(config.signKeyFile) : undefined;
    const store = openConfiguredStore(config);
    const log = (m: string) => console.error(`nix-castore drain: ${m}`);
    try {
      if (values.watch) {
        const stop = new AbortController();
        const stopped = new Promise<void>((resolve) => {
          const quit = () => {
            stop.abort();
            resolve();
          };
          process.once('SIGINT', quit);
          process.once('SIGTERM', quit);
        });
        const metrics = metricsAt && (await (await import('../server/metrics-endpoint.js')).startMetricsServer(metricsAt));
        if (metrics) console.error(`nix-castore drain: metrics on ${metrics.url}/metrics`);
        // Started before its store (a service ordered before the daemon): wait for it, as for any failed upload.
        const formula = await formulaOnceReachable(config, store, log, stop.signal);
        const w = formula && watchSpool(dir, { store, formula, jobs: config.jobs, signingKey, log });
        await stopped;
        await w?.stop();
        await metrics?.close();
        return 0;
      }
      const opts = { store, formula: await sizeFormulaFor(config, store), jobs: config.jobs, signingKey, log };
      const r = await drainOnce(dir, opts);
      if (r.busy) {
        console.error(`nix-castore drain: another drainer is working on ${dir}`);
        return 1;
      }
      console.error(`nix-castore drain: ${r.uploaded} uploaded, ${r.pending} left in ${dir}`);
      return r.pending > 0 ? 1 : 0;
    } finally {
      await store.close();
    }
  },
};

/** The size formula, asked again with backoff (1 s doubling to 60 s) while the store is unreachable; undefined once `stop` aborts. */
async function formulaOnceReachable(config: EffectiveConfig, store: Store, log: (m: string) => void, stop: AbortSignal): Promise<SizeFormula | undefined> {
  for (let wait = 1; !stop.aborted; wait = Math.min(wait * 2, 60)) {
    try {
      return await sizeFormulaFor(config, store);
    } catch (err) {
      if (!isKind(err, 'unavailable')) throw err;
      log(`${(err as Error).message}; trying again in ${wait} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait * 1000);
        stop.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }
  return undefined;
}
