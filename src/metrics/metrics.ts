// The process's Prometheus metrics: every name, type and label set in one
// place (README, "Metrics", documents each). Code that does the work only
// calls inc/observe/set on these; serving the exposition is the server's
// job. One registry per process: a daemon, or `drain --watch`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from './prom.js';

const P = 'nix_castore_';

/** Durations from a fast Stat to a NAR of a large path (seconds). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const registry = new Registry();

// gRPC, both transports (grpc-js and the lean node:http2 path), observed on
// the HTTP/2 stream they share, so each call is counted once.
export const grpcHandled = new Counter({
  name: `${P}grpc_server_handled_total`,
  help: 'gRPC calls finished, by service, method and status code (CANCELLED: the client reset the stream before a status was sent).',
  labelNames: ['service', 'method', 'code'] as const,
  registers: [registry],
});
export const grpcDuration = new Histogram({
  name: `${P}grpc_server_handling_seconds`,
  help: 'Time from a gRPC call\'s headers to its end, by service and method.',
  labelNames: ['service', 'method'] as const,
  buckets: DURATION_BUCKETS,
  registers: [registry],
});

export const httpRequests = new Counter({
  name: `${P}http_requests_total`,
  help: 'HTTP requests answered by the binary cache and metrics listeners, by route and status.',
  labelNames: ['route', 'status'] as const,
  registers: [registry],
});
export const httpDuration = new Histogram({
  name: `${P}http_request_duration_seconds`,
  help: 'Time from an HTTP request to the end of its response, by route.',
  labelNames: ['route'] as const,
  buckets: DURATION_BUCKETS,
  registers: [registry],
});

export const blobsWritten = new Counter({
  name: `${P}blobs_written_total`,
  help: 'Blobs accepted by BlobService/Put, BlobBatchService/Put and BlobDeltaService/Put (a blob the store already had counts too).',
  registers: [registry],
});
// Delta uploads (nixcastore.v1.BlobDeltaService): how often a base is found, and what it saves.
export const deltaBases: Counter<'result'> = new Counter({
  name: `${P}delta_find_base_total`,
  help: 'BlobDeltaService/FindBase calls with hooks, by result: found (a base answered) or none.',
  labelNames: ['result'],
  registers: [registry],
});
export const deltaBytes: Counter<'source'> = new Counter({
  name: `${P}delta_bytes_total`,
  help: 'Bytes of blobs stored by BlobDeltaService/Put, by source: base (taken from a blob the store had) or sent (received).',
  labelNames: ['source'],
  registers: [registry],
});
export const blobsFromPath = new Counter({
  name: `${P}blobs_from_path_total`,
  help: 'Blobs BlobFromPathService/Put read from a local client\'s file and stored (also counted in blobs_written_total).',
  registers: [registry],
});
export const directoriesWritten = new Counter({
  name: `${P}directories_written_total`,
  help: 'Directories accepted by DirectoryService/Put.',
  registers: [registry],
});
export const pathInfosWritten = new Counter({
  name: `${P}pathinfos_written_total`,
  help: 'PathInfos accepted by PathInfoService/Put.',
  registers: [registry],
});

// Store contents, refreshed in the background (store-stats gauges).
export const storeObjects = new Gauge({
  name: `${P}store_objects`,
  help: 'Objects in the store at the last refresh, by kind (blob, directory, pathinfo).',
  labelNames: ['kind'] as const,
  registers: [registry],
});
export const storeStoredBytes = new Gauge({
  name: `${P}store_stored_bytes`,
  help: 'Bytes the store holds at the last refresh: distinct blob bytes and directory encodings, by kind (blob, directory).',
  labelNames: ['kind'] as const,
  registers: [registry],
});
export const storeNarBytes = new Gauge({
  name: `${P}store_nar_bytes`,
  help: 'Sum of the NAR sizes of all PathInfos at the last refresh: what a NAR-level binary cache would store uncompressed.',
  registers: [registry],
});
export const storeStatsRefreshed = new Gauge({
  name: `${P}store_stats_last_refresh_timestamp_seconds`,
  help: 'When the count behind the store_* gauges started (Unix time): they include everything stored before it; 0 before the first.',
  registers: [registry],
});
export const storeStatsFailures = new Counter({
  name: `${P}store_stats_refresh_failures_total`,
  help: 'Background refreshes of the store_* gauges that failed (the gauges keep their last values).',
  registers: [registry],
});

// The daemon's budget of bytes held for clients (--max-buffered-bytes).
let bufferedNow: (() => number) | undefined;
export const bufferedBytes: Gauge = new Gauge({
  name: `${P}buffered_bytes`,
  help: 'Bytes held in memory for clients now (messages being received, unfinished Puts, NAR responses), counted against --max-buffered-bytes.',
  registers: [registry],
  collect() {
    bufferedBytes.set(bufferedNow?.() ?? 0);
  },
});
export const bufferedBytesLimit = new Gauge({
  name: `${P}buffered_bytes_limit`,
  help: 'The daemon\'s --max-buffered-bytes.',
  registers: [registry],
});
export const bufferRefusals = new Counter({
  name: `${P}buffer_refusals_total`,
  help: 'Requests refused because --max-buffered-bytes was reached (RESOURCE_EXHAUSTED, HTTP 503).',
  registers: [registry],
});

/** Where the buffered_bytes gauge reads from (the daemon's budget). */
export function observeBufferedBytes(inUse: () => number, limit: number): void {
  bufferedNow = inUse;
  bufferedBytesLimit.set(limit);
}

// The post-build hook's spool and its drainer (daemon --drain-spool, drain --watch).
export const hookQueueDepth = new Gauge({
  name: `${P}hook_queue_entries`,
  help: 'Entries in the post-build hook spool at the last drain pass.',
  registers: [registry],
});
let oldestQueuedMs: number | undefined;
export const hookQueueOldest: Gauge = new Gauge({
  name: `${P}hook_queue_oldest_age_seconds`,
  help: 'Age of the oldest entry in the hook spool at scrape time, as of the last drain pass (0 when empty).',
  registers: [registry],
  collect() {
    hookQueueOldest.set(oldestQueuedMs === undefined ? 0 : Math.max(0, (Date.now() - oldestQueuedMs) / 1000));
  },
});

/** What a drain pass saw in the spool: its entries and when the oldest was queued (ms since the epoch). */
export function setHookQueue(entries: number, oldestMs: number | undefined): void {
  hookQueueDepth.set(entries);
  oldestQueuedMs = oldestMs;
}
export const hookDrained = new Counter({
  name: `${P}hook_drain_entries_total`,
  help: 'Spool entries the drainer tried, by result (uploaded, failed; failed ones are retried later).',
  labelNames: ['result'] as const,
  registers: [registry],
});
hookDrained.inc({ result: 'uploaded' }, 0);
hookDrained.inc({ result: 'failed' }, 0);

// Garbage collection (src/gc/ updates these; defined here so the names are settled).
export const gcRuns = new Counter({
  name: `${P}gc_runs_total`,
  help: 'Garbage collection runs, by result (ok, failed).',
  labelNames: ['result'] as const,
  registers: [registry],
});
export const gcDuration = new Histogram({
  name: `${P}gc_duration_seconds`,
  help: 'Duration of garbage collection runs.',
  buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600],
  registers: [registry],
});
export const gcReclaimedBytes = new Counter({
  name: `${P}gc_reclaimed_bytes_total`,
  help: 'Bytes freed by garbage collection.',
  registers: [registry],
});

let defaults = false;
/** Process metrics (CPU, memory, file descriptors, event loop lag, GC pauses), once per process. */
export function enableProcessMetrics(): void {
  if (defaults) return;
  defaults = true;
  collectDefaultMetrics({ register: registry, prefix: P });
  // Gauges named like counters (promtool objects); the same figures by type
  // remain in nodejs_active_{handles,requests,resources}.
  for (const kind of ['handles', 'requests', 'resources']) registry.removeSingleMetric(`${P}nodejs_active_${kind}_total`);
}

/** The text exposition and its Content-Type. */
export async function exposition(): Promise<{ contentType: string; text: string }> {
  return { contentType: registry.contentType, text: await registry.metrics() };
}

// Bytes on the wire, read from the sockets' own counters when scraped: no
// work per read or write.
interface SocketLike {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  once(event: 'close', f: () => void): unknown;
}
type Listener = 'grpc' | 'http';
const live = new Map<SocketLike, Listener>();
const closed = { grpc: { read: 0, written: 0 }, http: { read: 0, written: 0 } };
const reported = { grpc: { read: 0, written: 0 }, http: { read: 0, written: 0 } };

function totals(): typeof closed {
  const t = { grpc: { ...closed.grpc }, http: { ...closed.http } };
  for (const [s, l] of live) {
    t[l].read += s.bytesRead;
    t[l].written += s.bytesWritten;
  }
  return t;
}

export const receivedBytes: Counter<'listener'> = new Counter({
  name: `${P}received_bytes_total`,
  help: 'Bytes received on the listeners\' connections, by listener (grpc, http).',
  labelNames: ['listener'] as const,
  registers: [registry],
  collect() {
    const t = totals();
    for (const l of ['grpc', 'http'] as const) {
      receivedBytes.inc({ listener: l }, t[l].read - reported[l].read);
      reported[l].read = t[l].read;
    }
  },
});
export const sentBytes: Counter<'listener'> = new Counter({
  name: `${P}sent_bytes_total`,
  help: 'Bytes sent on the listeners\' connections, by listener (grpc, http).',
  labelNames: ['listener'] as const,
  registers: [registry],
  collect() {
    const t = totals();
    for (const l of ['grpc', 'http'] as const) {
      sentBytes.inc({ listener: l }, t[l].written - reported[l].written);
      reported[l].written = t[l].written;
    }
  },
});
receivedBytes.inc({ listener: 'grpc' }, 0);
receivedBytes.inc({ listener: 'http' }, 0);
sentBytes.inc({ listener: 'grpc' }, 0);
sentBytes.inc({ listener: 'http' }, 0);

/** Counts a connection's bytes under `listener` from now until it closes. */
export function trackSocket(socket: SocketLike, listener: Listener): void {
  live.set(socket, listener);
  socket.once('close', () => {
    closed[listener].read += socket.bytesRead;
    closed[listener].written += socket.bytesWritten;
    live.delete(socket);
  });
}
