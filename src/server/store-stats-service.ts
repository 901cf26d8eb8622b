// nixcastore.v1.StoreStats (protos/nixcastore/v1/stats.proto) and the
// store_* gauges, over one shared count per store: a scrape never counts,
// and callers of Get during a count share the next one.
import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Store } from '../store/store.js';
import { sharedStats, type StoreStats } from '../store/store-stats.js';
import { storeNarBytes, storeObjects, storeStatsFailures, storeStatsRefreshed, storeStoredBytes } from '../metrics/metrics.js';
import type { StatusObject } from '../grpc/status.js';
import { unaryHandler } from './handlers.js';

const counters = new WeakMap<Store, () => Promise<StoreStats>>();

/** The store's shared count. */
export function countsOf(store: Store): () => Promise<StoreStats> {
  let c = counters.get(store);
  if (!c) counters.set(store, (c = sharedStats(store)));
  return c;
}

const canCount = (store: Store): boolean => !!(store.blobs.stats && store.directories.stats && store.pathInfos.stats);

export function storeStatsHandlers(store: Store): UntypedServiceImplementation {
  return {
    Get: unaryHandler<Record<string, never>, StoreStats | StatusObject>(async () => {
      if (!canCount(store)) return { code: status.UNIMPLEMENTED, details: "this daemon's store backend cannot count what it holds" };
      return countsOf(store)();
    }),
  };
}

/** `countedFrom`: when the count started (ms); it saw everything stored before then. */
export function setStoreGauges(s: StoreStats, countedFrom: number): void {
  storeObjects.set({ kind: 'pathinfo' }, s.pathInfos);
  storeObjects.set({ kind: 'directory' }, s.directories);
  storeObjects.set({ kind: 'blob' }, s.blobs);
  storeStoredBytes.set({ kind: 'blob' }, s.blobBytes);
  storeStoredBytes.set({ kind: 'directory' }, s.directoryBytes);
  storeNarBytes.set(s.narBytes);
  storeStatsRefreshed.set(countedFrom / 1000);
}

/**
 * Refreshes the store_* gauges now and every `intervalMs` (each refresh
 * starts only after the previous one ended) until stopped. A failure is
 * counted and reported once per streak; the gauges keep their last values.
 */
export function refreshStoreGauges(store: Store, intervalMs: number, log: (m: string) => void): { stop(): Promise<void> } {
  if (!canCount(store)) {
    log("the store_* metrics stay empty: this store backend cannot count what it holds");
    return { stop: async () => {} };
  }
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let failing = false;
  let current: Promise<void> = Promise.resolve();
  const run = () => {
    const from = Date.now();
    current = countsOf(store)()
      .then(
        (s) => {
          setStoreGauges(s, from);
          failing = false;
        },
        (err: Error) => {
          storeStatsFailures.inc();
          if (!failing) log(`counting the store for the metrics failed: ${err.message}`);
          failing = true;
        },
      )
      .then(() => {
        if (!stopped) timer = setTimeout(run, intervalMs);
      });
  };
  run();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
