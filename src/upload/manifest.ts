// A manifest of what a copy put into a store: per path its NAR hash and
// size, references and castore root — written next to an on-disk store by
// the Nix helper so users (and tests) can see what `result` holds.
import { writeFile, rename } from 'node:fs/promises';
import type { Store } from '../store/store.js';
import type { Closure } from '../closure/closure.js';
import { absolute } from '../nix/store-path.js';
import { formatNix32 } from '../nix/hash.js';
import { b3String } from '../castore/digest.js';

export interface ManifestEntry {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  root: { type: 'directory' | 'file' | 'symlink'; digest?: string; size?: number; target?: string };
}

export interface Manifest {
  version: 1;
  paths: ManifestEntry[];
}

export async function buildManifest(store: Store, closure: Closure): Promise<Manifest> {
  const paths: ManifestEntry[] = [];
  for (const e of closure.entries) {
    const info = await store.pathInfos.get(e.path.digest);
    if (!info?.node || !info.narinfo) throw new Error(`${absolute(e.path)} is not in the store`);
    const n = info.node;
    paths.push({
      path: absolute(e.path),
      narHash: formatNix32(info.narinfo.narSha256),
      narSize: info.narinfo.narSize,
      references: info.narinfo.referenceNames.map((r) => `/nix/store/${r}`),
      root:
        n.type === 'symlink'
          ? { type: 'symlink', target: Buffer.from(n.target).toString() }
          : { type: n.type, digest: b3String(n.digest), size: n.size },
    });
  }
  // Same-length hashes: string order is Nix's (nixbase32) order.
  paths.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { version: 1, paths };
}

export async function writeManifest(file: string, m: Manifest): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(m, null, 2) + '\n');
  await rename(tmp, file);
}
