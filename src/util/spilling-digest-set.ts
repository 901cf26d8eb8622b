// A set of 32-byte digests bounded in memory: an exact table (digest-table.ts)
// up to a budget; when that is full, its digests move to scratch files
// (record-spill.ts) and it starts empty again. So `has` is exact about what
// is in memory and may answer false for a digest that went to disk: callers
// use it only to skip repeated work (a directory walked twice is still
// walked right). Membership that matters is asked bucket by bucket, once
// everything is added (`bucket`), which reads each scratch file once.
import { tmpdir } from 'node:os';
import { DigestTable, SLOT_BYTES } from './digest-table.js';
import { RecordSpill } from './record-spill.js';

export interface DigestLookup {
  has(d: Uint8Array, at?: number): boolean;
}

export class SpillingDigestSet {
  private readonly table: DigestTable;
  private readonly spill: RecordSpill;
  private writes: Promise<void>[] = [];

  /**
   * `budgetBytes`: memory for the table and the chunks waiting to be
   * written (a flush copies the table into chunks: the table gets 2/5).
   */
  constructor(name: string, budgetBytes: number, scratchParent = tmpdir()) {
    const tableBytes = Math.max(SLOT_BYTES * 16, Math.floor(budgetBytes * 0.4));
    this.table = new DigestTable(1024, Math.floor(tableBytes / SLOT_BYTES));
    this.spill = new RecordSpill(`nix-castore-gc-${name}-`, 32, Math.max(64 << 10, Math.floor(budgetBytes * 0.2)), scratchParent);
  }

  /** Adds `d`; false if the table holds it already (true may be a digest that went to disk before). */
  add(d: Uint8Array, at = 0): boolean {
    if (this.table.has(d, at)) return false;
    if (this.table.full) this.flush();
    this.table.add(d, at);
    return true;
  }

  /** Exact for what is in memory; false may be wrong once `spilled`. */
  has(d: Uint8Array, at = 0): boolean {
    return this.table.has(d, at);
  }

  /** Whether some digests left the table (so `has` may miss them). */
  get spilled(): boolean {
    return this.spill.count > 0;
  }

  /** Whether some were written to scratch files. */
  get onDisk(): boolean {
    return this.spill.spilled;
  }

  /** Waits for scratch writes in flight; call it now and then while adding. */
  async drain(): Promise<void> {
    const w = this.writes;
    this.writes = [];
    await Promise.all(w);
  }

  /**
   * Exact membership for digests whose first byte is `b`. In memory only:
   * the table itself; spilled: the table moves to disk first (so it starts
   * empty) and the bucket's digests are read back into a table of their own.
   */
  async bucket(b: number): Promise<DigestLookup> {
    if (!this.spilled) return this.table;
    if (this.table.size > 0) this.flush();
    await this.drain();
    await this.spill.drain();
    const recs = await this.spill.records(b);
    const t = DigestTable.sized(recs.length / 32);
    for (let at = 0; at < recs.length; at += 32) t.add(recs, at);
    return t;
  }

  async dispose(): Promise<void> {
    await this.drain().catch(() => {});
    await this.spill.dispose();
  }

  private flush(): void {
    for (const d of this.table) {
      const w = this.spill.add(d);
      if (w) this.writes.push(w);
    }
    this.table.clear();
  }
}
