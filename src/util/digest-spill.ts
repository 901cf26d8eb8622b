// A multiset of 32-byte digests split into 256 buckets by first byte (the
// store's shards), kept in memory up to a limit and appended to scratch
// files beyond it (record-spill.ts). fsck collects every reference it sees
// here and later loads one bucket at a time to count the objects nothing
// refers to, so its memory stays bounded whatever the size of the store.
import { tmpdir } from 'node:os';
import { RecordSpill } from './record-spill.js';

const DIGEST_LEN = 32;

export class DigestSpill extends RecordSpill {
  constructor(name: string, limitBytes = 16 << 20, scratchParent = tmpdir()) {
    super(`nix-castore-fsck-${name}-`, DIGEST_LEN, limitBytes, scratchParent);
  }

  /** Records a digest (others than 32 bytes are ignored); returns a promise (to await) when that made it write to disk. */
  override add(digest: Uint8Array): Promise<void> | undefined {
    if (digest.length !== DIGEST_LEN) return undefined;
    return super.add(digest);
  }

  /** The distinct digests (lower-case hex) of one bucket. */
  async bucket(b: number): Promise<Set<string>> {
    const all = await this.records(b);
    const out = new Set<string>();
    for (let off = 0; off + DIGEST_LEN <= all.length; off += DIGEST_LEN) out.add(all.toString('hex', off, off + DIGEST_LEN));
    return out;
  }
}
