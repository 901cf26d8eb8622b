// Bounded concurrency over async sequences: at most `limit` at once.

/** Runs `fn` over `items` with at most `limit` at once. */
export async function forEachLimit<T>(items: AsyncIterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.asyncIterator]();
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed) {
      const r = await it.next(); // async generators queue concurrent next() calls
      if (r.done) return;
      try {
        await fn(r.value);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

export class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** An iterable as an async one, for forEachLimit. */
export async function* iterate<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}
