// Every blob (or directory) an on-disk store holds, read straight from its
// files: one file per large (or pre-pack) object under blobs/ (directories/),
// the rest in packs/ (directory-packs/).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PackStore } from '../../src/castore/disk/pack-store.js';

/** Blob bytes by lower-case hex digest. */
export function storedBlobs(root: string): Promise<Map<string, Buffer>> {
  return storedObjects(root, 'blobs', 'packs');
}

/** Encoded directories by lower-case hex digest. */
export function storedDirectories(root: string): Promise<Map<string, Buffer>> {
  return storedObjects(root, 'directories', 'directory-packs');
}

async function storedObjects(root: string, filesDir: string, packsDir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const base = join(root, filesDir);
  for (const shard of await readdir(base).catch(() => [] as string[])) {
    for (const name of await readdir(join(base, shard))) out.set(name, await readFile(join(base, shard, name)));
  }
  const packs = new PackStore(join(root, packsDir));
  try {
    for (const hex of (await packs.entries()).keys()) {
      const data = await packs.read(hex);
      if (!data) throw new Error(`packed object ${hex} in ${packsDir} is not what its index says`);
      out.set(hex, data);
    }
  } finally {
    await packs.close();
  }
  return out;
}
