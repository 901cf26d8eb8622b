// A large on-disk store written straight into its files, quickly (no Nix,
// no daemon): `paths` store paths, each a tree of `dirs` directories
// holding `files` small files (every other directory with a nested one),
// plus one loose blob over the pack threshold. Every path shares one
// directory and one file per directory with all others; the rest is its
// own. Paths are written in groups, one pack writer per group (so several
// packs, each holding old and new paths), and sealed. Old paths get a
// push time 60 days back; a path i with i % 8 === 0 refers to path i + 1.
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PackStore } from '../../src/castore/disk/pack-store.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize, encodeDirectory } from '../../src/castore/directory.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { PathInfoCodec, type PathInfo } from '../../src/store/messages.js';
import { calculateNar, type Castore } from '../../src/store/render-nar.js';

export interface SynthSpec {
  paths: number;
  dirs: number;
  files: number;
  /** Paths per pack writer. */
  group: number;
}

export interface SynthPath {
  name: string;
  key: string;
  old: boolean;
  refs: number[];
  /** Hex digests of the blobs and directories of its tree. */
  blobs: Set<string>;
  directories: Set<string>;
}

const DAY = 86_400_000;
const LOOSE_SIZE = (256 << 10) + 4096;

export async function writeSyntheticStore(root: string, spec: SynthSpec): Promise<SynthPath[]> {
  for (const d of ['packs', 'directory-packs', 'blobs', 'directories', 'pathinfo', 'tmp']) await mkdir(join(root, d), { recursive: true });
  const blobs = new Map<string, Buffer>();
  const dirs = new Map<string, Directory>();
  const out: SynthPath[] = [];
  const file = (name: string, data: Buffer, p: SynthPath) => {
    const digest = blake3(data);
    blobs.set(digest.toString('hex'), data);
    p.blobs.add(digest.toString('hex'));
    return { name: Buffer.from(name), digest, size: data.length, executable: false };
  };
  const dir = (d: Directory, p: SynthPath) => {
    const digest = directoryDigest(d);
    dirs.set(digest.toString('hex'), d);
    p.directories.add(digest.toString('hex'));
    return digest;
  };
  const sub = (name: string, d: Directory, p: SynthPath) => ({ name: Buffer.from(name), digest: dir(d, p), size: directorySize(d) });
  const pad = (n: number) => String(n).padStart(3, '0');

  for (let g = 0; g * spec.group < spec.paths; g++) {
    const blobPack = new PackStore(join(root, 'packs'));
    const dirPack = new PackStore(join(root, 'directory-packs'));
    const writes: Promise<void>[] = [];
    for (let i = g * spec.group; i < Math.min(spec.paths, (g + 1) * spec.group); i++) {
      const storeDigest = blake3(Buffer.from(`synthetic path ${root} ${i}`)).subarray(0, 20);
      const p: SynthPath = { name: `${nix32(storeDigest)}-synth-${i}`, key: storeDigest.toString('hex'), old: i % 2 === 1, refs: i % 8 === 0 && i + 1 < spec.paths ? [i + 1] : [], blobs: new Set(), directories: new Set() };
      const subdirs = [];
      for (let j = 0; j < spec.dirs; j++) {
        const files = [];
        for (let k = 0; k < spec.files; k++) files.push(file(`f${pad(k)}`, Buffer.from(k === 0 ? `shared file ${j}` : j === 0 ? `shared dir file ${k}` : `file ${i} ${j} ${k}`), p));
        const nested = j % 2 === 1 && j > 0 ? [sub('n', { directories: [], files: [file('a', Buffer.from(`nested ${i} ${j} a`), p), file('b', Buffer.from(`nested ${i} ${j} b`), p)], symlinks: [] }, p)] : [];
        subdirs.push(sub(`d${pad(j)}`, { directories: nested, files, symlinks: [] }, p));
      }
      const big = Buffer.alloc(LOOSE_SIZE, i % 251);
      big.write(`loose ${i}`);
      const rootDir: Directory = { directories: subdirs, files: [file('large', big, p)], symlinks: [] };
      const node: Node = { type: 'directory', name: Buffer.from(p.name), digest: dir(rootDir, p), size: directorySize(rootDir) };
      out.push(p);
      // Children first: a directory is stored after what it refers to.
      for (const hex of p.blobs) {
        const data = blobs.get(hex)!;
        if (data.length > 256 << 10) writes.push(writeLoose(root, hex, data));
        else writes.push(blobPack.append(Buffer.from(hex, 'hex'), data));
      }
      for (const hex of p.directories) writes.push(dirPack.append(Buffer.from(hex, 'hex'), encodeDirectory(dirs.get(hex)!)));
      (p as SynthPath & { node: Node }).node = node;
    }
    await Promise.all(writes);
    await blobPack.close(); // seals the packs (read-only indexes)
    await dirPack.close();
  }

  const castore = {
    blobs: { read: async (d: Uint8Array) => (async function* () { yield blobs.get(Buffer.from(d).toString('hex'))!; })() },
    directories: { get: async (d: Uint8Array) => dirs.get(Buffer.from(d).toString('hex')) },
  } as unknown as Castore;
  const old = new Date(Date.now() - 60 * DAY);
  for (const p of out) {
    const node = (p as SynthPath & { node: Node }).node;
    const nar = await calculateNar(node, castore);
    const refs = p.refs.map((r) => out[r]);
    const info: PathInfo = {
      node,
      references: refs.map((r) => Buffer.from(r.key, 'hex')),
      narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: refs.map((r) => r.name) },
    };
    const f = join(root, 'pathinfo', p.key.slice(0, 2), p.key);
    await mkdir(join(root, 'pathinfo', p.key.slice(0, 2)), { recursive: true });
    await writeFile(f, PathInfoCodec.encode(info));
    if (p.old) await utimes(f, old, old);
  }
  return out;
}

async function writeLoose(root: string, hex: string, data: Buffer): Promise<void> {
  await mkdir(join(root, 'blobs', hex.slice(0, 2)), { recursive: true });
  await writeFile(join(root, 'blobs', hex.slice(0, 2), hex), data);
}
