// The daemon's garbage collection: the AdminService backend for its store,
// and collections on a schedule (--gc-interval with --gc-keep-since,
// --gc-max-size, --gc-grace).
import { metered } from '../gc/metered.js';
import { scaleoutAdmin } from '../gc/scaleout-admin.js';
import { UsageError } from '../util/usage.js';
import { parseAddr } from '../addr/parse.js';
import type { Store, StoreAddrs } from '../addr/open.js';
import { DiskBlobService } from '../castore/disk/disk-blob-service.js';
import { DiskDirectoryService } from '../castore/disk/disk-directory-service.js';
import { LocalPathInfoService } from '../store/backends/local-pathinfo-service.js';
import { diskAdmin, policyOf, type GcAdmin, type GcRequest } from '../gc/admin.js';
import { parseDuration } from '../gc/policy.js';
import { formatReport } from '../gc/report.js';
import type { GcStamp } from './daemon-gc-stamp.js';

export const DAEMON_GC_FLAGS = {
  'gc-interval': { type: 'string' },
  'gc-keep-since': { type: 'string' },
  'gc-max-size': { type: 'string' },
  'gc-grace': { type: 'string' },
  'gc-memory': { type: 'string' },
} as const;

export const DAEMON_GC_HELP = `Garbage collection (see 'nix-castore gc --help' for the policy):
      --gc-interval D      collect every D (e.g. 1d, 6h), counted from the
                           last scheduled collection recorded with the
                           store (restarts do not start it over),
                           keeping what these say:
      --gc-keep-since D    paths pushed or read within D (e.g. 30d);
      --gc-max-size S      the most recently used paths up to S (e.g. 500G);
      --gc-grace D         what was written within D (default 1h).
      --gc-memory S        memory for the collector's marks (default
                           64MiB; beyond it they spill to disk), also for
                           collections asked through AdminService that
                           name none (needs no --gc-interval).
                           Needs an on-disk or scale-out (s3://) store;
                           not with --read-only.
                           'nix-castore gc --store grpc+…' and 'pin' reach
                           the same collector through
                           nixcastore.v1.AdminService (a write: token needed).`;

/**
 * The collector of the daemon's store, if it has one (one on-disk store for
 * all three services). Before each collection the daemon seals the packs it
 * writes to, so their garbage can go too.
 */
export function adminFor(addrs: StoreAddrs, store: () => Store | undefined, memory?: string): GcAdmin | undefined {
  const admin = collectorFor(addrs, store);
  return admin && metered(memory === undefined ? admin : withMemory(admin, memory));
}

/** --gc-memory is also what a caller's collection gets when it names no memory of its own. */
function withMemory(admin: GcAdmin, memory: string): GcAdmin {
  return { ...admin, collect: (req, log) => admin.collect({ ...req, memory: req.memory || memory }, log) };
}

function collectorFor(addrs: StoreAddrs, store: () => Store | undefined): GcAdmin | undefined {
  const kinds = [addrs.blob, addrs.directory, addrs.pathInfo].map((a) => parseAddr(a));
  if (kinds.every((a) => a.kind === 's3') && new Set([addrs.blob, addrs.directory, addrs.pathInfo]).size === 1) return scaleoutAdmin(addrs.blob);
  const roots = new Set(kinds.map((a) => (a.kind === 'file' ? a.root : undefined)));
  const [root] = roots;
  if (roots.size !== 1 || root === undefined) return undefined;
  return diskAdmin(root, async () => {
    const s = store();
    if (s?.blobs instanceof DiskBlobService) await s.blobs.packs.seal();
    if (s?.directories instanceof DiskDirectoryService) await s.directories.packs.seal();
  });
}

export interface GcSchedule {
  stop(): Promise<void>;
}

export function scheduleGc(
  values: { 'gc-interval'?: string; 'gc-keep-since'?: string; 'gc-max-size'?: string; 'gc-grace'?: string; 'gc-memory'?: string },
  admin: GcAdmin | undefined,
  readOnly: boolean,
  log: (msg: string) => void,
  stamp?: GcStamp,
): GcSchedule | undefined {
  const interval = values['gc-interval'];
  const req: GcRequest = { keepSince: values['gc-keep-since'], maxSize: values['gc-max-size'], grace: values['gc-grace'], memory: values['gc-memory'] };
  if (interval === undefined) {
    for (const f of ['gc-keep-since', 'gc-max-size', 'gc-grace'] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} is a policy for scheduled collections: give --gc-interval D too`);
    }
    if (values['gc-memory'] !== undefined) {
      if (!admin) throw new UsageError('--gc-memory needs a store with a collector: on disk (--data DIR or --store file:///DIR) or scale-out (--store s3://…?index=postgres://…)');
      checkPolicy({ keepSince: '0', memory: values['gc-memory'] });
    }
    return undefined;
  }
  const everyMs = parseDuration(interval, '--gc-interval');
  if (everyMs < 1000) throw new UsageError('--gc-interval must be at least 1s');
  if (readOnly) throw new UsageError('--gc-interval deletes from the store: not with --read-only');
  if (!admin) throw new UsageError('--gc-interval needs a store with a collector: on disk (--data DIR or --store file:///DIR) or scale-out (--store s3://…?index=postgres://…)');
  checkPolicy(req);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const ac = new AbortController();
  // What this daemon last read or wrote as the interval's start.
  let known: number | undefined;
  /** Runs a collection unless another daemon of the store started one meanwhile; returns when the next is due. */
  const run = async (): Promise<number> => {
    const started = Date.now();
    // Claimed before collecting, so the store's other daemons skip this round.
    const claimed = await (stamp && known !== undefined ? stamp.claim(known, started) : stamp?.write(started).then(() => true))?.catch((err: Error) => {
      log(`gc: cannot record when this collection started (${err.message}); after a restart the next one waits ${interval}`);
      return true;
    });
    if (claimed === false) {
      const latest = (await stamp?.read().catch(() => undefined)) ?? started;
      known = latest;
      log(`gc: another daemon of this store started a collection at ${new Date(latest).toISOString()}; the next is due an interval after it`);
      return latest + everyMs;
    }
    known = started;
    try {
      const report = await admin.collect({ ...req, signal: ac.signal }, log);
      for (const line of formatReport(report).split('\n')) log(line);
    } catch (err) {
      log(`gc failed: ${(err as Error).message}`);
    }
    return started + everyMs;
  };
  // Daemons sharing a store wake at the same due time: a spread of up to
  // a tenth of the interval (at most a minute) lets the first claim it.
  const spread = () => Math.random() * Math.min(60_000, everyMs / 10);
  // setTimeout takes at most 2^31-1 ms (24.8 days): longer intervals wait in steps.
  const arm = (due: number) => {
    const left = due - Date.now();
    if (left > 0) {
      timer = setTimeout(() => arm(due), Math.min(left, 2 ** 31 - 1));
      return;
    }
    let next = Date.now() + everyMs;
    running = run()
      .then((d) => void (next = d))
      .finally(() => {
        running = undefined;
        if (!ac.signal.aborted) arm(Math.max(next, Date.now() + 1000) + spread());
      });
  };
  // The first collection is due an interval after the start recorded with
  // the store: of its last collection, or of the first schedule that found
  // none (recorded now), so restarts do not start the interval over.
  const first = (async () => {
    const last = await stamp?.read();
    if (last !== undefined || !stamp) return last;
    const now = Date.now();
    await stamp.write(now);
    return now;
  })().catch((err: Error) => {
    log(`gc: cannot read or record when the interval started (${err.message}); the first collection waits ${interval} from now`);
    return undefined;
  });
  const armed = first.then((last) => {
    if (ac.signal.aborted) return;
    known = last;
    const due = last === undefined ? Date.now() + everyMs : Math.max(Date.now(), last + everyMs);
    log(`collecting garbage every ${interval} (next ${due <= Date.now() ? 'now' : new Date(due).toISOString()})`);
    arm(due + spread());
  });
  return {
    async stop() {
      ac.abort(new Error('the daemon is stopping; nothing was deleted'));
      await armed;
      clearTimeout(timer);
      await running;
    },
  };
}

/** Makes a store record the reads it serves (for --keep-since): the daemon and `nar` do (on disk and scale-out). */
export function recordReads(store: Store): void {
  if (store.pathInfos instanceof LocalPathInfoService) store.pathInfos.recordReads = true;
}

/** The policy flags' errors, named as the daemon's --gc-… flags. */
function checkPolicy(req: GcRequest): void {
  try {
    policyOf(req);
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/--(keep-since|max-size|grace|memory)/g, '--gc-$1'));
  }
}
