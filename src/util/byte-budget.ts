// One process-wide budget of bytes held in memory on behalf of clients
// (a daemon's buffered request bytes). Holders grow and shrink their share;
// growth that would pass the limit is refused, never granted, so whoever
// asked fails instead of the process growing.
export class ByteBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** A share of this budget, starting at 0 bytes. */
  holding(): Holding {
    return new Holding(this);
  }

  /** @internal Holding's accounting. */
  adjust(delta: number): boolean {
    if (delta > 0 && this.used + delta > this.limit) return false;
    this.used += delta;
    return true;
  }
}

/** What one request (or one part of it) holds of a ByteBudget. */
export class Holding {
  private held = 0;

  constructor(private readonly budget: ByteBudget) {}

  get bytes(): number {
    return this.held;
  }

  /** The budget's limit. */
  get limit(): number {
    return this.budget.limit;
  }

  /** Holds exactly `n` bytes from now on; false (holding what it held) if growing to `n` would pass the budget. */
  set(n: number): boolean {
    if (!this.budget.adjust(n - this.held)) return false;
    this.held = n;
    return true;
  }

  /** Holds `n` more bytes; false (and nothing more) if that would pass the budget. */
  grow(n: number): boolean {
    return this.set(this.held + n);
  }

  release(): void {
    this.set(0);
  }
}

/** A budget that never refuses (library use, tests that do not need one). */
export const UNLIMITED = (): ByteBudget => new ByteBudget(Number.POSITIVE_INFINITY);
