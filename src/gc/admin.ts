// Pins and collections of one store, as the CLI (on a local store) and the
// daemon's AdminService (for remote callers) both use them.
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { diskLayout } from '../addr/open.js';
import { CastoreError, invalid } from '../castore/errors.js';
import { DiskPins, checkPinName } from '../store/backends/disk-retention.js';
import { parseAbsolute, absolute } from '../nix/store-path.js';
import { now } from '../util/clock.js';
import { UsageError } from '../util/usage.js';
import { collectDisk } from './disk-gc.js';
import { DEFAULT_GC_MEMORY, MIN_GC_MEMORY, parseDuration, parseSize } from './policy.js';
import type { GcReport } from './report.js';

/** A collection's policy as the gc command's flags spell it (undefined or '': not given). */
export interface GcRequest {
  keepSince?: string;
  maxSize?: string;
  grace?: string;
  /** Memory for the collector's mark sets and lists (`64MiB`); beyond it they spill to disk. */
  memory?: string;
  dryRun?: boolean;
  /** Stops the collection before it deletes anything. */
  signal?: AbortSignal;
}

export interface GcAdmin {
  /** Replaces the pin's paths; every one must be in the store ('precondition' otherwise, nothing changed). */
  setPin(name: string, storePaths: string[]): Promise<void>;
  /** False if there was no such pin. */
  removePin(name: string): Promise<boolean>;
  listPins(): Promise<{ name: string; paths: string[] }[]>;
  collect(req: GcRequest, log?: (msg: string) => void): Promise<GcReport>;
}

const MAX_PIN_PATHS = 100_000;

/** The policy options of a request; bad input throws 'invalid' (nothing was changed). */
export function policyOf(req: GcRequest) {
  try {
    const keepSinceMs = req.keepSince ? parseDuration(req.keepSince, '--keep-since') : undefined;
    const maxSizeBytes = req.maxSize ? parseSize(req.maxSize, '--max-size') : undefined;
    const graceMs = parseDuration(req.grace || '1h', '--grace');
    const memoryBytes = req.memory ? parseSize(req.memory, '--memory') : DEFAULT_GC_MEMORY;
    if (memoryBytes < MIN_GC_MEMORY) throw new UsageError(`--memory must be at least 1MiB, got ${JSON.stringify(req.memory)}`);
    if (keepSinceMs === undefined && maxSizeBytes === undefined) {
      throw new UsageError('say what to keep besides pins: --keep-since D (e.g. 30d; 0 for pins only) and/or --max-size S (e.g. 500G)');
    }
    return { keepSinceMs, maxSizeBytes, graceMs, memoryBytes };
  } catch (err) {
    if (err instanceof UsageError) throw invalid(err.message);
    throw err;
  }
}

/**
 * A collection a daemon's caller asks for: as policyOf, and its memory at
 * most half of the machine's (the daemon goes on serving meanwhile).
 */
export function remotePolicyOf(req: GcRequest) {
  const policy = policyOf(req);
  const most = Math.floor(totalmem() / 2);
  if (policy.memoryBytes > most) {
    throw invalid(`--memory ${req.memory} is more than half of the daemon's machine's memory; ask for at most ${Math.floor(most / (1 << 20))}MiB`);
  }
  return policy;
}

/** `beforeCollect`: e.g. a daemon seals its own packs, so they can be compacted too. */
/** A pin's store paths, checked and normalised (both backends' SetPin). */
export function pinPaths(pinName: string, storePaths: string[]): string[] {
  if (storePaths.length === 0) throw invalid(`pin ${pinName} needs at least one store path (to remove it: pin rm ${pinName})`);
  if (storePaths.length > MAX_PIN_PATHS) throw invalid(`a pin holds at most ${MAX_PIN_PATHS} store paths`);
  return storePaths.map((p) => {
    try {
      return absolute(parseAbsolute(p));
    } catch (err) {
      throw invalid(`${JSON.stringify(p)} is not a store path: ${(err as Error).message}`);
    }
  });
}

export function diskAdmin(root: string, beforeCollect?: () => Promise<void>): GcAdmin {
  const layout = diskLayout(root);
  const pins = new DiskPins(layout);
  const present = (p: string) => existsSync(layout.objectPath('pathinfo', parseAbsolute(p).digest));
  const name = (n: string) => {
    checkPinName(n);
    return n;
  };
  /** With no collector deleting (GcFence.guard): the paths are there, and the pin written. */
  const setPinFenced = async (pinName: string, paths: string[]): Promise<void> => {
    const missing = paths.filter((p) => !present(p));
    if (missing.length > 0) throw new CastoreError('precondition', `not in the store: ${missing.join(' ')}; pin ${pinName} not changed (copy the paths first)`);
    await pins.set(pinName, paths);
  };
  return {
    async setPin(pinName, storePaths) {
      name(pinName);
      const paths = pinPaths(pinName, storePaths);
      // Inside the fence, as a PathInfo Put: a collector's deletions never run
      // meanwhile (it waits, or this waits for it), and one that is marking
      // journals the paths, so its late look at the roots keeps them.
      await layout.gc.guard(paths.map((p) => parseAbsolute(p).digest), () => setPinFenced(pinName, paths));
    },
    removePin: (pinName) => pins.remove(name(pinName)),
    listPins: () => pins.list(),
    async collect(req, log) {
      const policy = policyOf(req);
      await beforeCollect?.();
      return collectDisk(root, { ...policy, nowMs: now(), dryRun: req.dryRun, log, signal: req.signal });
    },
  };
}
