// The retention policy, one for every backend: which PathInfos a collection
// keeps. keep = closure(pinned ∪ pushed or read within keep-since ∪ pushed
// within the grace period ∪ most recently used paths while the total fits
// max-size). Closed under references: whatever the store still serves can
// be substituted completely.
import { UsageError } from '../util/usage.js';
import { parseAbsolute } from '../nix/store-path.js';

export interface PolicyOptions {
  /** Keep paths pushed or read within this many ms (undefined: this rule keeps nothing). */
  keepSinceMs?: number;
  /** Fill with the most recently used paths while the kept NAR bytes stay within this. */
  maxSizeBytes?: number;
  /** Paths pushed this recently are always kept (uploads in flight). */
  graceMs: number;
  nowMs: number;
}

export interface PathRecord {
  /** Hex of the 20-byte store-path digest. */
  key: string;
  /** Store-path basename. */
  name: string;
  /** Keys of the references (itself may be among them). */
  refs: string[];
  narSize: number;
  pushedMs: number;
  readMs: number;
}

export type KeepReason = 'pinned' | 'recent' | 'grace' | 'size' | 'reference';

export interface KeptSet {
  kept: Map<string, KeepReason>;
  /** Bytes (NAR sizes) of the kept paths. */
  keptBytes: number;
  /** References to paths the store lacks (a store path kept whose closure is incomplete). */
  missingRefs: { from: string; ref: string }[];
}

export function decideKept(paths: Map<string, PathRecord>, pinned: Set<string>, opts: PolicyOptions): KeptSet {
  const kept = new Map<string, KeepReason>();
  const missingRefs: { from: string; ref: string }[] = [];
  let keptBytes = 0;
  const keepClosure = (root: string, reason: KeepReason): void => {
    const stack = [root];
    let first = true;
    while (stack.length > 0) {
      const k = stack.pop()!;
      if (kept.has(k)) continue;
      const p = paths.get(k)!;
      kept.set(k, first ? reason : 'reference');
      first = false;
      keptBytes += p.narSize;
      for (const r of p.refs) {
        if (kept.has(r)) continue;
        if (!paths.has(r)) missingRefs.push({ from: p.name, ref: r });
        else stack.push(r);
      }
    }
  };
  /** NAR bytes `root`'s closure would add. */
  const closureCost = (root: string): number => {
    const seen = new Set<string>();
    const stack = [root];
    let bytes = 0;
    while (stack.length > 0) {
      const k = stack.pop()!;
      if (seen.has(k) || kept.has(k)) continue;
      seen.add(k);
      const p = paths.get(k);
      if (!p) continue;
      bytes += p.narSize;
      stack.push(...p.refs);
    }
    return bytes;
  };

  for (const k of [...pinned].sort()) if (paths.has(k)) keepClosure(k, 'pinned');
  const lastUse = (p: PathRecord) => Math.max(p.pushedMs, p.readMs);
  for (const p of paths.values()) {
    if (opts.nowMs - p.pushedMs < opts.graceMs) keepClosure(p.key, 'grace');
  }
  if (opts.keepSinceMs !== undefined) {
    for (const p of paths.values()) if (opts.nowMs - lastUse(p) <= opts.keepSinceMs) keepClosure(p.key, 'recent');
  }
  if (opts.maxSizeBytes !== undefined) {
    // Most recently used first; stop at the first that does not fit (least recently used go).
    const order = [...paths.values()].filter((p) => !kept.has(p.key)).sort((a, b) => lastUse(b) - lastUse(a) || (a.key < b.key ? -1 : 1));
    for (const p of order) {
      if (kept.has(p.key)) continue;
      if (keptBytes + closureCost(p.key) > opts.maxSizeBytes) break;
      keepClosure(p.key, 'size');
    }
  }
  return { kept, keptBytes, missingRefs };
}

// ---- flags ----

/** Memory for a collection's mark sets and lists when not told otherwise (`--memory`); beyond it they spill to disk. */
export const DEFAULT_GC_MEMORY = 64 << 20;
/** Less would spill for every few thousand objects. */
export const MIN_GC_MEMORY = 1 << 20;

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `30d`, `12h`, `90m`, `45s`, `2w`, `0` → ms. */
export function parseDuration(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])?$/.exec(v.trim());
  if (!m || (m[2] === undefined && Number(m[1]) !== 0)) {
    throw new UsageError(`${flag} takes a duration like 30d, 12h, 90m, 45s or 2w (units s, m, h, d, w), got ${JSON.stringify(v)}`);
  }
  const ms = Number(m[1]) * (m[2] ? DURATION_UNITS[m[2]] : 0);
  if (!Number.isSafeInteger(Math.round(ms))) throw new UsageError(`${flag}: ${JSON.stringify(v)} is too long`);
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `500G`, `1.5TiB`, `200MiB`, `1000000` → bytes. */
export function parseSize(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(v.trim());
  const unit = m?.[2].toLowerCase();
  if (!m || unit === undefined || !(unit in SIZE_UNITS)) {
    throw new UsageError(`${flag} takes a size like 500G, 200MiB or 1.5TiB (units B, K, M, G, T and KiB, MiB, GiB, TiB), got ${JSON.stringify(v)}`);
  }
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[unit]);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${flag}: ${JSON.stringify(v)} is too large`);
  return bytes;
}

/** Store-path digests (hex) of the pins' paths; a pinned path the store lacks is a warning. */
export function pinnedKeys(list: { name: string; paths: string[] }[], paths: Map<string, unknown>, warnings: string[]): Set<string> {
  const keys = new Set<string>();
  for (const pin of list) {
    for (const p of pin.paths) {
      const key = Buffer.from(parseAbsolute(p).digest).toString('hex');
      keys.add(key);
      if (!paths.has(key)) warnings.push(`pin ${pin.name}: ${p} is not in the store`);
    }
  }
  return keys;
}

/** decideKept with the pins' paths as roots; absent pins and references the store lacks become warnings. */
export function decideWithPins(paths: Map<string, PathRecord>, pins: { name: string; paths: string[] }[], opts: PolicyOptions, warnings: string[]): KeptSet {
  const decision = decideKept(paths, pinnedKeys(pins, paths, warnings), opts);
  for (const m of decision.missingRefs) warnings.push(`${m.from} refers to a path the store lacks (digest ${m.ref}): its closure was incomplete already`);
  return decision;
}
