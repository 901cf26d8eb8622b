// A large file handed to a daemon on this machine by its path
// (BlobFromPathService): the daemon reads, hashes and stores it, and no
// byte crosses the socket. Any refusal (a file it may not read, one below
// no directory it reads from, a daemon in another mount namespace) leaves
// the file to be sent as usual.
import { isAbsolute } from 'node:path';
import type { BlobService } from '../castore/blob-service.js';
import { b3String } from '../castore/digest.js';
import { CastoreError } from '../castore/errors.js';
import { isBelow } from '../util/path-below.js';

/** Refusals, with none accepted, after which a run stops asking (the daemon evidently cannot read its files). */
const GIVE_UP_AFTER = 8;

export class LocalReads {
  private accepted = 0;
  private refused = 0;

  constructor(
    private readonly blobs: BlobService,
    private readonly log: (msg: string) => void,
  ) {}

  /** Whether the store read `file` itself; false: send its bytes. */
  async stored(digest: Buffer, size: number, file: string | Buffer): Promise<boolean> {
    if (!this.blobs.fromPath || (this.accepted === 0 && this.refused >= GIVE_UP_AFTER)) return false;
    const path = typeof file === 'string' ? Buffer.from(file) : file;
    try {
      const local = await this.blobs.fromPath();
      if (!local || !isAbsolute(path.toString('latin1')) || !local.roots.some((r) => isBelow(path, r))) return false;
      const got = await local.put(digest, size, path);
      if (!got.equals(digest)) throw new CastoreError('internal', `the daemon stored ${b3String(got)}`);
      this.accepted++;
      return true;
    } catch (err) {
      this.refused++;
      this.log(`blob ${b3String(digest)}: not read by the daemon itself (${(err as Error).message}); sending its bytes`);
      if (this.accepted === 0 && this.refused === GIVE_UP_AFTER) this.log(`the daemon refused ${GIVE_UP_AFTER} files and read none: sending the bytes of every file from now on`);
      return false;
    }
  }
}
