// A store on a full filesystem (a 32 MiB tmpfs): writes fail with a clear
// storage error, nothing partial becomes visible, temp files are removed,
// and the daemon keeps serving reads.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind } from '../../src/castore/errors.js';
import { checkHealth } from '../../src/grpc/health-client.js';

let tmp: string;
let mnt: string;
let daemon: DaemonProcess;
let store: Store;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-full-'));
  mnt = join(tmp, 'small-fs');
  await mkdir(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a 32 MiB tmpfs and needs root (as CI has): ${(err as Error).message}`);
  }
  daemon = await startDaemonProcess({ dataDir: mnt, args: ['--data', mnt] });
  store = openStore(sameAddr(daemon.addr));
});

after(async () => {
  await store?.close();
  await daemon?.stop();
  try {
    execFileSync('umount', [mnt]);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

const pattern = (size: number, seed: number) => {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
};

it('fails writes cleanly when the disk is full and keeps serving reads', async () => {
  const small = pattern(8 << 20, 1);
  const smallDigest = await putBytes(store.blobs, small);

  const big = pattern(40 << 20, 2);
  await assert.rejects(putBytes(store.blobs, big), (e) => isKind(e, 'storage') && /no space left|ENOSPC/i.test((e as Error).message), 'a clear storage error');
  assert.equal(await store.blobs.stat(blake3(big)), undefined, 'no partial blob visible');
  for (let i = 0; i < 50 && (await readdir(join(mnt, 'tmp'))).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await readdir(join(mnt, 'tmp')), [], 'temp files removed');

  // Reads still work, and the daemon is healthy.
  assert.ok((await readAll(store.blobs, smallDigest))!.equals(small));
  assert.equal(await checkHealth(`unix://${daemon.socket}`), 'SERVING');

  // Fill the disk to the brim with a file outside the store, then a Directory Put fails with nothing visible.
  const filler = join(mnt, 'filler');
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
  } catch {
    // dd stops with ENOSPC: exactly what we want
  }
  const dir = { directories: [], files: [{ name: Buffer.from('f'), digest: smallDigest, size: small.length, executable: false }], symlinks: [] };
  await assert.rejects(putClosure(store.directories, [dir]), (e) => isKind(e, 'storage'));
  const { directoryDigest } = await import('../../src/castore/directory.js');
  assert.equal(await store.directories.get(directoryDigest(dir)), undefined);
  await assert.rejects(putBytes(store.blobs, pattern(1 << 20, 3)), (e) => isKind(e, 'storage'));

  // Space freed: writes work again.
  await rm(filler);
  assert.deepEqual(Buffer.from(await putClosure(store.directories, [dir])), directoryDigest(dir));
  assert.ok((await readAll(store.blobs, smallDigest))!.equals(small));
});
