// The figures of `nix-castore stats`, the store_* metrics and the
// nixcastore.v1.StoreStats service, from the three services' own counts.
import type { Store } from './store.js';
import { CastoreError } from '../castore/errors.js';
import { encodeWith } from '../proto/writer.js';
import { readFields, expectVarint } from '../proto/reader.js';
import type { Codec } from '../castore/messages.js';

export interface StoreStats {
  pathInfos: number;
  /** Sum of the PathInfos' NAR sizes. */
  narBytes: number;
  directories: number;
  directoryBytes: number;
  blobs: number;
  blobBytes: number;
}

/** Bytes the store holds: blob bytes plus directory encodings. */
export const storedBytes = (s: StoreStats): number => s.blobBytes + s.directoryBytes;

/** NAR bytes per stored byte: what deduplication saves against a NAR-level cache; undefined for an empty store. */
export const dedupRatio = (s: StoreStats): number | undefined => (storedBytes(s) > 0 ? s.narBytes / storedBytes(s) : undefined);

export async function storeStats(store: Store): Promise<StoreStats> {
  const missing = (what: string) => new CastoreError('internal', `this ${what} backend cannot count what it holds`);
  const [p, d, b] = await Promise.all([
    store.pathInfos.stats ? store.pathInfos.stats() : Promise.reject(missing('PathInfo')),
    store.directories.stats ? store.directories.stats() : Promise.reject(missing('directory')),
    store.blobs.stats ? store.blobs.stats() : Promise.reject(missing('blob')),
  ]);
  return { pathInfos: p.count, narBytes: p.narBytes, directories: d.count, directoryBytes: d.bytes, blobs: b.count, blobBytes: b.bytes };
}

/**
 * One count at a time: callers that arrive while one runs share the next,
 * so a count always starts after its caller asked and concurrent callers
 * cost one walk of the store, not one each.
 */
export function sharedStats(store: Store): () => Promise<StoreStats> {
  let running: Promise<StoreStats> | undefined;
  let next: Promise<StoreStats> | undefined;
  const start = (): Promise<StoreStats> => {
    const p = storeStats(store).finally(() => {
      if (running === p) running = undefined;
    });
    return (running = p);
  };
  return () => {
    if (!running) return start();
    next ??= running.catch(() => {}).then(() => {
      next = undefined;
      return start();
    });
    return next;
  };
}

const FIELDS = ['pathInfos', 'narBytes', 'directories', 'directoryBytes', 'blobs', 'blobBytes'] as const;

/** nixcastore.v1.StoreStatsResponse (protos/nixcastore/v1/stats.proto). */
export const StoreStatsCodec: Codec<StoreStats> = {
  encode: (m) => encodeWith((w, v: StoreStats) => FIELDS.forEach((f, i) => w.uint64(i + 1, v[f])), m),
  decode: (buf) => {
    const m: StoreStats = { pathInfos: 0, narBytes: 0, directories: 0, directoryBytes: 0, blobs: 0, blobBytes: 0 };
    for (const f of readFields(buf)) if (f.field >= 1 && f.field <= FIELDS.length) m[FIELDS[f.field - 1]] = expectVarint(f);
    return m;
  },
};

/** nixcastore.v1.GetStoreStatsRequest: empty. */
export const GetStoreStatsRequestCodec: Codec<Record<string, never>> = {
  encode: () => Buffer.alloc(0),
  decode: () => ({}),
};
