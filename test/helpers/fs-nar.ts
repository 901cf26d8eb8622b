// Filesystem → NarNode adapter for tests: feeds a directory tree on disk (e.g.
// a real store path) to the NAR writer. Never follows symlinks; names and
// symlink targets are raw bytes, so non-UTF-8 names survive.
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { NarNode } from '../../src/nix/nar.js';

const CHUNK_SIZE = 1 << 20; // 1 MiB reads
const SLASH = Buffer.from('/');

/** The NarNode for `path` (a string or raw-byte Buffer path), read lazily from disk. */
export async function fsNarNode(path: string | Buffer): Promise<NarNode> {
  const p = typeof path === 'string' ? Buffer.from(path) : path;
  const st = await lstat(p);
  if (st.isSymbolicLink()) {
    return { type: 'symlink', target: await readlink(p, { encoding: 'buffer' }) };
  }
  if (st.isFile()) {
    return {
      type: 'regular',
      executable: (st.mode & 0o100) !== 0, // owner-execute bit only, like Nix
      size: st.size,
      contents: () => createReadStream(p, { highWaterMark: CHUNK_SIZE }),
    };
  }
  if (st.isDirectory()) {
    return {
      type: 'directory',
      entries: async function* () {
        const names = await readdir(p, { encoding: 'buffer' });
        names.sort(Buffer.compare); // bytewise, as NAR requires
        for (const name of names) {
          yield { name, node: await fsNarNode(Buffer.concat([p, SLASH, name])) };
        }
      },
    };
  }
  throw new Error(`unsupported file type for NAR (not a regular file, symlink or directory): ${p.toString()}`);
}
