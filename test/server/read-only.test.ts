// `nix-castore daemon --read-only`: every write RPC (BlobService/Put,
// DirectoryService/Put, PathInfoService/Put, under tvix.* and snix.*)
// answers PERMISSION_DENIED and changes nothing on disk; reads work.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer, auth, symlinkPathInfo } from '../helpers/grpc-writes.js';
import { runCli } from '../copy/run-cli.js';
import { fixtures, HELLO, HELLO_DIGEST } from '../helpers/castore-fixtures.js';
import { fileAddr } from '../../src/addr/parse.js';
import { directoryDigest } from '../../src/castore/directory.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import type { Directory } from '../../src/castore/messages.js';

let tmp: string;
let dataDir: string;
let daemon: DaemonProcess;
let w: Writer;
const existing = symlinkPathInfo('already-there');

/** Every file under the data dir with its size and mtime: what "changes nothing" is checked against. */
async function snapshot(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const s = await stat(p);
        out.push(`${relative(dataDir, p)} ${s.size} ${s.mtimeMs}`);
      }
    }
  };
  await walk(dataDir);
  return out.sort();
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-ro-'));
  dataDir = join(tmp, 'data');
  // Some content, written directly into the on-disk store.
  const store = openStore(sameAddr(fileAddr(dataDir)));
  const put = store.blobs.put();
  await put.write(HELLO);
  await put.close();
  await store.blobs.put().close(); // the empty blob .keep refers to
  const { WITH_KEEP, COMPLICATED } = fixtures();
  await putClosure(store.directories, [WITH_KEEP, COMPLICATED]);
  await store.pathInfos.put(existing.info);
  await store.close();
  daemon = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--read-only'] });
  w = new Writer(daemon.socket);
});

after(async () => {
  w?.close();
  await daemon?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('a read-only daemon', () => {
  it('says so when it starts', () => {
    assert.match(daemon.stderr(), /read-only/);
  });

  it('serves reads', async () => {
    assert.equal((await w.statBlob(HELLO_DIGEST)).name, 'OK');
    const got = await w.getDirectory(directoryDigest(fixtures().COMPLICATED));
    assert.equal(got.name, 'OK');
    assert.equal(got.res!.length, 1);
    assert.equal((await w.getPathInfo(existing.storeDigest)).name, 'OK');
    const store = openStore(sameAddr(daemon.addr));
    try {
      const chunks: Buffer[] = [];
      for await (const c of (await store.blobs.read(HELLO_DIGEST))!) chunks.push(Buffer.from(c));
      assert.equal(Buffer.concat(chunks).toString(), 'Hello World!');
      const listed = [];
      for await (const p of store.pathInfos.list()) listed.push(p);
      assert.equal(listed.length, 1);
      const nar = await store.pathInfos.calculateNar({ type: 'file', name: Buffer.alloc(0), digest: HELLO_DIGEST, size: 12, executable: false });
      assert.equal(nar.narSize, 128);
    } finally {
      await store.close();
    }
  });

  it('refuses all three writes with PERMISSION_DENIED and changes nothing', async () => {
    const before = await snapshot();
    const data = Buffer.from('not stored');
    const d: Directory = { directories: [], files: [], symlinks: [{ name: Buffer.from('ro'), target: Buffer.from('t') }] };
    const fresh = symlinkPathInfo('refused');
    for (const pkg of ['tvix', 'snix'] as const) {
      for (const md of [auth(), auth('Bearer anything')]) {
        const blob = await w.putBlob(data, md, pkg);
        assert.equal(blob.name, 'PERMISSION_DENIED', blob.details);
        assert.match(blob.details, /read-only/);
        assert.equal((await w.putBlob(HELLO, md, pkg)).name, 'PERMISSION_DENIED', 'even for a blob it has');
        assert.equal((await w.putDirectories([d], md, pkg)).name, 'PERMISSION_DENIED');
        assert.equal((await w.putDirectories([], md, pkg)).name, 'PERMISSION_DENIED');
        assert.equal((await w.putPathInfo(fresh.info, md, pkg)).name, 'PERMISSION_DENIED');
        assert.equal((await w.putPathInfo(existing.info, md, pkg)).name, 'PERMISSION_DENIED', 'no overwrite either');
      }
    }
    assert.equal((await w.statBlob(blake3(data))).name, 'NOT_FOUND');
    assert.equal((await w.getDirectory(directoryDigest(d))).name, 'NOT_FOUND');
    assert.equal((await w.getPathInfo(fresh.storeDigest)).name, 'NOT_FOUND');
    assert.deepEqual(await snapshot(), before, 'the data dir is untouched');
  });

  it('copy into it fails with PERMISSION_DENIED', async () => {
    const store = openStore(sameAddr(daemon.addr));
    try {
      const put = store.blobs.put();
      await put.write(Buffer.from('x')).catch(() => {});
      await assert.rejects(put.close(), /PERMISSION_DENIED/);
    } finally {
      await store.close();
    }
  });
});

describe('--read-only with --auth-token-file', () => {
  it('unauthenticated writes → UNAUTHENTICATED, authenticated ones → PERMISSION_DENIED', async () => {
    const tokenFile = join(tmp, 'token');
    await writeFile(tokenFile, 'ro-token\n');
    const d = await startDaemonProcess({ args: ['--store', 'memory://', '--read-only', '--auth-token-file', tokenFile] });
    const w2 = new Writer(d.socket);
    try {
      assert.equal((await w2.putBlob(Buffer.from('x'))).name, 'UNAUTHENTICATED');
      assert.equal((await w2.putBlob(Buffer.from('x'), auth('Bearer ro-token'))).name, 'PERMISSION_DENIED');
    } finally {
      w2.close();
      await d.stop();
    }
  });

  it('--read-only with --drain-spool is a usage error', async () => {
    const r = await runCli(['daemon', '--store', 'memory://', '--listen', `unix:${join(tmp, 'never.sock')}`, '--read-only', '--drain-spool', tmp]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--read-only/);
  });
});
