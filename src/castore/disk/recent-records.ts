// Records this process stored lately, by hex digest, within a byte budget
// (the oldest go first). Only for reads that a collector's epoch guards:
// the owner clears it when the epoch moves (gc-fence.ts), as it drops what
// it knows about packs.
export class RecentRecords {
  private readonly records = new Map<string, Buffer>();
  private bytes = 0;
  /** Records handed out from memory (for tests). */
  hits = 0;

  constructor(private readonly budget: number) {}

  /** Keeps a copy of `data`: the caller's buffer may be a view into a larger message. */
  add(hex: string, data: Uint8Array): void {
    if (data.length > this.budget || this.records.has(hex)) return;
    this.records.set(hex, Buffer.from(data));
    this.bytes += data.length;
    for (const [oldest, b] of this.records) {
      if (this.bytes <= this.budget) break;
      this.records.delete(oldest);
      this.bytes -= b.length;
    }
  }

  get(hex: string): Buffer | undefined {
    const b = this.records.get(hex);
    if (b) this.hits++;
    return b;
  }

  clear(): void {
    this.records.clear();
    this.bytes = 0;
  }
}
