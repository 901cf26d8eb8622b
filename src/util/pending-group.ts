// Waiting for many promises without holding them: Promise.all over an
// array kept every upload's promise of a store path (tens of thousands)
// alive until the path was done, long enough for each to be promoted to
// V8's old generation. This keeps a count and the first failure.

export class PendingGroup {
  private pending = 0;
  private failure: { err: unknown } | undefined;
  private wake: (() => void) | undefined;

  add(p: Promise<unknown>): void {
    this.pending++;
    p.then(
      () => this.settled(),
      (err: unknown) => {
        this.failure ??= { err };
        this.settled();
      },
    );
  }

  /** Like Promise.all of everything added: resolves once all have settled, rejects with the first failure. */
  async all(): Promise<void> {
    while (this.pending > 0 && !this.failure) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure.err;
  }

  private settled(): void {
    this.pending--;
    const w = this.wake;
    if (w && (this.pending === 0 || this.failure)) {
      this.wake = undefined;
      w();
    }
  }
}
