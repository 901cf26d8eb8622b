// When PathInfos are read, for retention (--keep-since), the same way for
// every backend: reads are collected in memory and handed to the backend's
// sink every FLUSH_MS (or once FLUSH_AT paths are waiting), one record per
// path read meanwhile — never a write per read on the hot path — and when
// the service closes. The sink is the backend's (access/ files on disk, a
// column in PostgreSQL). Times come from util/clock.ts so tests can move them.
import { now } from '../util/clock.js';

/** Writes the batch (store-path digest hex → read time in ms); throws if it could not. */
export type ReadSink = (reads: Map<string, number>) => Promise<void>;

const FLUSH_MS = 2000;
const FLUSH_AT = 4096;
/** A sink failing for long (database down) keeps at most this many reads for later. */
const MAX_PENDING = 100_000;

export class ReadRecorder {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly sink: ReadSink) {}

  read(storeDigest: Uint8Array): void {
    if (this.closed) return;
    const key = Buffer.from(storeDigest).toString('hex');
    if (this.pending.size >= MAX_PENDING && !this.pending.has(key)) return;
    this.pending.set(key, now());
    if (this.pending.size >= FLUSH_AT) void this.flush();
    else this.arm();
  }

  private arm(): void {
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS).unref();
  }

  /** Writes what is pending; a failed batch is kept for the next flush (a lost read makes a path look older). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      try {
        await this.sink(batch);
      } catch {
        for (const [k, t] of batch) {
          if (this.pending.size >= MAX_PENDING) break;
          if ((this.pending.get(k) ?? 0) < t) this.pending.set(k, t);
        }
        if (!this.closed) this.arm();
      }
    });
    return this.flushing;
  }

  /** The last flush: what it cannot write is lost (the path looks older), and nothing is retried later. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
