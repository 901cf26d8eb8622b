// Blob checks of an on-disk store: every blob file hashes to its name, and
// why the blob a FileNode names cannot serve it, if it cannot.
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Blake3Stream, b3Hex } from '../castore/digest.js';
import { readAhead } from '../castore/disk/read-ahead.js';
import { message } from './report.js';
import { errno, type DiskCheckState } from './disk-state.js';

export class BlobChecks {
  constructor(private readonly s: DiskCheckState) {}

  async check(hex: string, rel: string): Promise<void> {
    let h;
    try {
      h = await open(join(this.s.root, rel), 'r');
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      this.s.corruptBlobs.add(hex);
      this.s.report('error', 'blob', rel, `unreadable: ${message(err)}`);
      return;
    }
    const hash = new Blake3Stream();
    let size = 0;
    try {
      for await (const chunk of readAhead(h)) {
        hash.update(chunk);
        size += chunk.length;
      }
    } catch (err) {
      this.s.corruptBlobs.add(hex);
      this.s.report('error', 'blob', rel, `unreadable: ${message(err)}`);
      return;
    } finally {
      await h.close();
    }
    this.s.counts.blobs++;
    this.s.counts.blobBytes += size;
    const got = b3Hex(hash.digest());
    if (got !== hex) {
      this.s.corruptBlobs.add(hex);
      this.s.report('error', 'blob', rel, `content (${size} bytes) hashes to ${got}, not to its name`);
    }
  }

  /** Why the blob a FileNode names cannot serve it, if it cannot. */
  async problem(digest: Uint8Array, size: number): Promise<string | undefined> {
    if (digest.length !== 32) return `invalid digest length ${digest.length}`;
    const hex = b3Hex(digest);
    let st;
    try {
      st = await stat(join(this.s.root, this.s.rel('blobs', hex)));
    } catch (err) {
      if (errno(err) !== 'ENOENT') return `blob ${hex} cannot be read: ${message(err)}`;
      const packed = this.s.packBlobs.get(hex);
      if (packed === undefined) return this.s.corruptPacked.has(hex) ? `blob ${hex} is corrupt` : `blob ${hex} is missing`;
      return packed === size ? undefined : `the entry says ${size} bytes but blob ${hex} has ${packed}`;
    }
    if (st.size !== size) return `the entry says ${size} bytes but blob ${hex} has ${st.size}`;
    if (this.s.corruptBlobs.has(hex)) return `blob ${hex} is corrupt`;
    return undefined;
  }
}
