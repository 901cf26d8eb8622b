// Coalesces lookups made in the same turn of the event loop into one query:
// a copy stats thousands of digests at once, and PostgreSQL answers a
// thousand keys in one query about as fast as one key.
import { digestKey } from '../castore/digest.js';

export class Batcher<V> {
  /** By digestKey. */
  private pending = new Map<string, { key: Buffer; waiters: ((v: V | undefined, err?: unknown) => void)[] }>();
  private scheduled = false;

  constructor(
    /** Values by digestKey. */
    private readonly fetch: (keys: Buffer[]) => Promise<Map<string, V>>,
    private readonly maxBatch = 1000,
  ) {}

  get(key: Uint8Array): Promise<V | undefined> {
    const k = Buffer.from(key);
    const id = digestKey(k);
    return new Promise((resolve, reject) => {
      const waiter = (v: V | undefined, err?: unknown) => (err ? reject(err) : resolve(v));
      const entry = this.pending.get(id);
      if (entry) entry.waiters.push(waiter);
      else this.pending.set(id, { key: k, waiters: [waiter] });
      if (this.pending.size >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.fetch([...batch.values()].map((e) => e.key)).then(
      (found) => {
        for (const [id, e] of batch) for (const w of e.waiters) w(found.get(id));
      },
      (err) => {
        for (const e of batch.values()) for (const w of e.waiters) w(undefined, err);
      },
    );
  }
}
