// `nar` checks what it wrote against the PathInfo's NarSize and NarHash,
// hashing on a thread of its own (src/upload/hash-thread.ts): the right
// record passes with the bytes of the NAR, a wrong NarHash of the right
// size fails with both hashes named, and a file larger than the hashing
// ring (8 MiB) goes through it whole.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { blake3 } from '../../src/castore/digest.js';
import { directorySize } from '../../src/castore/directory.js';
import { putClosure } from '../../src/castore/directory-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { calculateNar } from '../../src/store/render-nar.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { formatNix32 } from '../../src/nix/hash.js';
import { CLI } from '../helpers/daemon.js';

let tmp: string;
let data: string;
let narSha256: Buffer;
const paths = { right: '', wrong: '' };

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-nar-verify-'));
  data = join(tmp, 'data');
  const store = openStore(sameAddr(fileAddr(data)));
  try {
    const put = async (bytes: Buffer) => {
      const w = store.blobs.put();
      for (let i = 0; i < bytes.length; i += 1 << 20) await w.write(bytes.subarray(i, i + (1 << 20)));
      return { digest: await w.close(), size: bytes.length };
    };
    const large = await put(randomBytes(11 << 20));
    const small = await put(Buffer.from('small file\n'));
    const dir: Directory = {
      directories: [],
      symlinks: [{ name: Buffer.from('link'), target: Buffer.from('small') }],
      files: [
        { name: Buffer.from('large'), ...large, executable: false },
        { name: Buffer.from('small'), ...small, executable: true },
      ],
    };
    const root = await putClosure(store.directories, [dir]);
    const node = (name: string) => ({ type: 'directory' as const, name: Buffer.from(name), digest: root, size: directorySize(dir, 'head') });
    const nar = await calculateNar(node('x'), store);
    narSha256 = nar.narSha256;
    for (const kind of Object.keys(paths) as (keyof typeof paths)[]) {
      const name = `${nix32(Buffer.from(blake3(Buffer.from(kind)).subarray(0, 20)))}-${kind}`;
      paths[kind] = `/nix/store/${name}`;
      const recorded = { narSize: nar.narSize, narSha256: kind === 'right' ? nar.narSha256 : Buffer.alloc(32, 7), signatures: [], referenceNames: [] };
      await store.pathInfos.put({ node: node(name), references: [], narinfo: recorded });
    }
  } finally {
    await store.close();
  }
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function nar(path: string): Promise<{ code: number | null; sha256: Buffer; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'nar', '--store', fileAddr(data), path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const h = createHash('sha256');
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => h.update(d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return { code, sha256: h.digest(), stderr };
}

it('nar: a NAR matching its record is written whole and exits 0', async () => {
  const r = await nar(paths.right);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.sha256.equals(narSha256));
});

it('nar: a NarHash that does not match fails with exit 1, naming both hashes', async () => {
  const r = await nar(paths.wrong);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.sha256.equals(narSha256), 'the bytes are still the NAR');
  assert.match(r.stderr, /does not match the store's record/);
  assert.ok(r.stderr.includes(formatNix32(narSha256)) && r.stderr.includes(formatNix32(Buffer.alloc(32, 7))), r.stderr);
});
