// A BlobService whose Puts record the hooks of each large blob they store
// (hook-index.ts), so later uploads of similar blobs can be sent as deltas
// against it. Every way in (gRPC and HTTP uploads, imports, deltas) goes
// through put(); the rest of the service is the wrapped one's.
import type { BlobService, BlobWriter } from '../blob-service.js';
import { HookFinder, HOOK_REGION } from './chunking.js';
import { DELTA_MIN } from './delta-store.js';
import type { HookHints } from './hook-index.js';

export function hookedBlobs(blobs: BlobService, index: HookHints): BlobService {
  const put = (): BlobWriter => new HookingWriter(blobs.put(), index);
  // Methods are bound once: the daemon's hot paths (a Stat per call) read them from here every time.
  const bound = new Map<PropertyKey, unknown>([['put', put]]);
  return new Proxy(blobs, {
    get(target, key) {
      const known = bound.get(key);
      if (known) return known;
      const v = Reflect.get(target, key, target) as unknown;
      if (typeof v !== 'function') return v;
      const f = v.bind(target);
      bound.set(key, f);
      return f;
    },
  });
}

/** Sizes are unknown until the end: hooks are looked for up to a bound, and kept only for a large blob. */
const LARGEST = Number.MAX_SAFE_INTEGER - HOOK_REGION;

class HookingWriter implements BlobWriter {
  private readonly finder = new HookFinder(LARGEST);
  private written = 0;

  constructor(
    private readonly inner: BlobWriter,
    private readonly index: HookHints,
  ) {}

  write(chunk: Uint8Array, released?: () => void): Promise<void> {
    // The finder looks at ~50 KiB of each 2 MiB and skips the rest.
    if (this.finder.next() < this.written + chunk.length) this.finder.push(chunk, this.written);
    this.written += chunk.length;
    return this.inner.write(chunk, released);
  }

  async close(signal?: AbortSignal): Promise<Buffer> {
    const digest = await this.inner.close(signal);
    if (this.written >= DELTA_MIN) {
      // A hook cut off by the blob's end was never completed: all hooks found lie within the blob.
      // Hints that cannot be kept (an index unreachable) cost later deltas, never this Put.
      await this.index.add(digest, this.finder.hooks).catch(() => {});
    }
    return digest;
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }
}
