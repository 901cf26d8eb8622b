// Draining the hook's spool into a store: each due entry's outputs (and
// their closures) are copied; entries that fail are rescheduled with
// backoff and retried later, never dropped, never holding up the rest.
import type { Store } from '../store/store.js';
import type { SizeFormula } from '../castore/directory.js';
import type { SecretKey } from '../nix/signature.js';
import { parsePathInfoJson } from '../closure/path-info-json.js';
import { copyClosure } from './copy.js';
import { derivationOutputs, nixPathInfoJson } from './nix-cli.js';
import { complete, isDue, listEntries, queueSnapshot, reschedule, withDrainLock, type SpoolEntry } from './spool.js';
import { hookDrained, setHookQueue } from '../metrics/metrics.js';
import { makeDirsSync } from '../util/make-dirs.js';

export interface DrainOptions {
  store: Store;
  formula: SizeFormula;
  jobs: number;
  signingKey?: SecretKey;
  log(msg: string): void;
  /** Once aborted no further entry is started (the one uploading finishes); the rest stay queued. */
  signal?: AbortSignal;
}

export interface DrainResult {
  uploaded: number;
  failed: number;
  /** Entries left for later (failed now, or not yet due). */
  pending: number;
  /** The drain lock was held by another drainer. */
  busy: boolean;
}

async function drainEntry(dir: string, e: SpoolEntry, opts: DrainOptions): Promise<boolean> {
  try {
    if (e.unreadable !== undefined || e.lastError?.startsWith('unreadable spool entry')) throw new Error(e.lastError ?? 'unreadable spool entry');
    const outs = e.outPaths.length > 0 ? e.outPaths : e.drvPath ? await derivationOutputs(e.drvPath) : [];
    if (outs.length === 0) throw new Error('the entry names no output paths and no derivation');
    const closure = parsePathInfoJson(await nixPathInfoJson(outs), { file: 'nix path-info' });
    const report = await copyClosure({ store: opts.store, closure, jobs: opts.jobs, formula: opts.formula, signingKey: opts.signingKey });
    if (report.failed.length > 0) throw new Error(report.failed.map((f) => `${f.path}: ${f.reason}`).join('; '));
    await complete(dir, e.id);
    opts.log(`uploaded ${outs.join(' ')} (${report.uploaded.length} new paths)`);
    return true;
  } catch (err) {
    const why = `${e.drvPath ?? e.id}: ${(err as Error).message}`;
    try {
      const next = await reschedule(dir, e, (err as Error).message);
      opts.log(`${why}; attempt ${next.attempts}, retrying after ${next.nextAttemptAt}`);
    } catch (writeErr) {
      // The spool's disk is full, say: the entry stays as it was, and the others are still drained.
      opts.log(`${why}; its retry could not be recorded (${(writeErr as Error).message}), trying again on the next pass`);
    }
    return false;
  }
}

async function observeQueue(dir: string): Promise<void> {
  const q = await queueSnapshot(dir).catch(() => undefined);
  if (q) setHookQueue(q.entries, q.oldestMs);
}

export async function drainOnce(dir: string, opts: DrainOptions): Promise<DrainResult> {
  const result: DrainResult = { uploaded: 0, failed: 0, pending: 0, busy: false };
  const ran = await withDrainLock(dir, async () => {
    for (const e of await listEntries(dir)) {
      if (!isDue(e) || opts.signal?.aborted) {
        result.pending++;
        continue;
      }
      const ok = await drainEntry(dir, e, opts);
      // The queue as it is after this entry, before the result is counted:
      // whoever sees the count sees the queue that followed it.
      await observeQueue(dir);
      if (ok) {
        result.uploaded++;
        hookDrained.inc({ result: 'uploaded' });
      } else {
        result.failed++;
        result.pending++;
        hookDrained.inc({ result: 'failed' });
      }
    }
    return true;
  });
  if (!ran) result.busy = true;
  await observeQueue(dir);
  return result;
}

/** Drains now and whenever the spool changes (or a retry falls due) until stopped. */
export function watchSpool(dir: string, opts: DrainOptions & { intervalMs?: number }): { stop(): Promise<void> } {
  let stopped = false;
  // A stop waits for the entry being uploaded, not for the whole backlog.
  const ac = new AbortController();
  const drainOpts = { ...opts, signal: ac.signal };
  let running: Promise<unknown> = Promise.resolve();
  let again = false;
  const kick = () => {
    if (stopped) return;
    again = true;
    running = running.then(async () => {
      while (again && !stopped) {
        again = false;
        await drainOnce(dir, drainOpts).catch((err) => opts.log(`drain failed: ${(err as Error).message}`));
      }
    });
  };
  // fs.watch misses nothing important here: the timer is the safety net.
  let watcher: import('node:fs').FSWatcher | undefined;
  void import('node:fs').then(({ watch }) => {
    if (stopped) return;
    makeDirsSync(dir);
    watcher = watch(dir, () => kick());
  });
  const timer = setInterval(kick, opts.intervalMs ?? 2000);
  kick();
  return {
    async stop() {
      stopped = true;
      ac.abort();
      clearInterval(timer);
      watcher?.close();
      await running;
    },
  };
}
