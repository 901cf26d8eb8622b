// Issue 21: a copy into a local store computes the NARs' SHA-256 on a
// thread of its own (hash-thread.ts). The digests are Nix's
// (`nix-store --dump | sha256sum`), the bytes really are hashed on the
// other thread (its own count), a small ring that wraps and fills gives the
// same digests, and a failing thread fails the copy of its path, which is
// not published, with no thread left running.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile, symlink, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireNix, runNix, nixStoreDump, fixtureClosure } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { copyClosure } from '../../src/upload/copy.js';
import { HashThread } from '../../src/upload/hash-thread.js';
import { parsePathInfoJson } from '../../src/closure/path-info-json.js';
import { nixPathInfoJson } from '../../src/upload/nix-cli.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import type { Closure } from '../../src/closure/closure.js';
import { renderNar } from '../../src/store/render-nar.js';

let tmp: string;
/** A path over the size from which a copy starts the thread (16 MiB): large and small files, symlinks, an executable. */
let bigPath: string;

async function makeTree(dir: string): Promise<void> {
  let x = 0x1234567;
  const bytes = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b.writeUInt32LE(x >>> 0, Math.min(i, n - 4));
    }
    return b;
  };
  await mkdir(join(dir, 'big'), { recursive: true });
  for (let i = 0; i < 5; i++) await writeFile(join(dir, 'big', `f${i}`), bytes((3 << 20) + 4099 * i));
  for (let d = 0; d < 10; d++) {
    await mkdir(join(dir, `d${d}`));
    for (let f = 0; f < 100; f++) await writeFile(join(dir, `d${d}`, `f${f}`), bytes(100 + ((f * 7919) % 60000)));
    await symlink(`../big/f${d % 5}`, join(dir, `d${d}`, 'link'));
  }
  await chmod(join(dir, 'd0', 'f0'), 0o755);
}

async function closureOf(paths: string[]): Promise<Closure> {
  return parsePathInfoJson(await nixPathInfoJson(paths), { file: 'nix path-info' });
}

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'hash-thread-'));
  await makeTree(join(tmp, 'tree'));
  bigPath = (await runNix('nix-store', ['--add', join(tmp, 'tree')])).stdout.toString().trim();
});

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('NAR hashing on a thread of its own', () => {
  it('a copy into file:// hashes every NAR byte on the thread, and the digest is nix-store --dump | sha256sum', async () => {
    const store = openStore(sameAddr(fileAddr(join(tmp, 'store1'))));
    try {
      const closure = await closureOf([bigPath]);
      const report = await copyClosure({ store, closure, jobs: 4, formula: 'head' });
      assert.deepEqual(report.failed, []);
      const dump = await nixStoreDump(bigPath);
      assert.ok(dump.length >= 16 << 20, `the path is over the threshold (${dump.length} bytes)`);
      assert.equal(report.narBytesHashedOffThread, dump.length, 'every NAR byte was hashed on the hashing thread');
      const info = await store.pathInfos.get(parseAbsolute(bigPath).digest);
      assert.ok(info, 'published');
      assert.deepEqual(Buffer.from(info.narinfo!.narSha256), sha256(dump));
      // The large files' digests come back from the thread after the walk went on: the tree stored is still the files'.
      const chunks: Uint8Array[] = [];
      for await (const c of renderNar(info.node!, store)) chunks.push(c);
      assert.ok(Buffer.concat(chunks).equals(dump), 'the NAR rendered from the store is nix-store --dump');
    } finally {
      await store.close();
    }
  });

  it('a ring smaller than a file (it wraps, fills, and the walk waits for it) gives the same digests, for every fixture path', async () => {
    const fx = await fixtureClosure();
    const store = openStore(sameAddr('memory://'));
    const thread = new HashThread({ ringBytes: 2 << 20 });
    try {
      const closure = await closureOf([bigPath, ...fx.paths.map((p) => p.path)]);
      const report = await copyClosure({ store, closure, jobs: 4, formula: 'head', narHashing: thread });
      assert.deepEqual(report.failed, []);
      let total = 0;
      for (const path of [bigPath, ...fx.paths.map((p) => p.path)]) {
        const dump = await nixStoreDump(path);
        total += dump.length;
        const info = await store.pathInfos.get(parseAbsolute(path).digest);
        assert.deepEqual(Buffer.from(info!.narinfo!.narSha256), sha256(dump), path);
      }
      assert.equal(report.narBytesHashedOffThread, total);
      assert.ok(thread.roomWaits > 0, 'the walk had to wait for the ring');
    } finally {
      await thread.close();
      await store.close();
    }
  });

  it('with the default ring, the walk waits for room before it writes: no write blocks the main thread', async () => {
    const fx = await fixtureClosure();
    const store = openStore(sameAddr('memory://'));
    const thread = new HashThread();
    try {
      const closure = await closureOf([bigPath, ...fx.paths.map((p) => p.path)]);
      const report = await copyClosure({ store, closure, jobs: 4, formula: 'head', narHashing: thread });
      assert.deepEqual(report.failed, []);
      assert.ok(report.narBytesHashedOffThread > 16 << 20);
      assert.equal(thread.blockedWrites, 0);
    } finally {
      await thread.close();
      await store.close();
    }
  });

  it('a hashing thread that fails fails its path with the path named; nothing is published and no thread is left', async () => {
    const store = openStore(sameAddr(fileAddr(join(tmp, 'store2'))));
    const thread = new HashThread({ failAfterBytes: 4 << 20 });
    try {
      const closure = await closureOf([bigPath]);
      const report = await copyClosure({ store, closure, jobs: 1, formula: 'head', narHashing: thread });
      assert.deepEqual(report.uploaded, []);
      assert.equal(report.failed.length, 1);
      assert.equal(report.failed[0].path, bigPath);
      assert.match(report.failed[0].reason, new RegExp(`hashing the NAR of ${bigPath} failed: the hashing thread failed: failing after`));
      assert.equal(await store.pathInfos.get(parseAbsolute(bigPath).digest), undefined, 'not published');
      assert.equal(thread.running, false, 'the thread is gone');
    } finally {
      await thread.close();
      await store.close();
    }
  });

  it('a large file the thread cannot read fails its path with the file named; the thread goes on with other paths', async () => {
    const thread = new HashThread();
    try {
      const missing = join(tmp, 'gone');
      const bad = thread.begin('/nix/store/x-bad');
      bad.update(Buffer.from('framing'));
      const file = bad.file(Buffer.from(missing), 2 << 20);
      const digest = bad.digest();
      await assert.rejects(file, new RegExp(`^Error: ${missing}: ENOENT`));
      await assert.rejects(digest, new RegExp(`hashing the NAR of /nix/store/x-bad failed: ${missing}: ENOENT`));
      const good = thread.begin('/nix/store/x-good');
      good.update(Buffer.from('abc'));
      assert.deepEqual(await good.digest(), sha256(Buffer.from('abc')));
      assert.equal(thread.running, true);
    } finally {
      await thread.close();
    }
  });

  it('a copy into a daemon keeps hashing on its own thread (the daemon needs the other core)', async () => {
    const daemon = await startDaemonProcess();
    const store = openStore(sameAddr(daemon.addr));
    try {
      const report = await copyClosure({ store, closure: await closureOf([bigPath]), jobs: 4, formula: 'head' });
      assert.deepEqual(report.failed, []);
      assert.equal(report.narBytesHashedOffThread, 0);
    } finally {
      await store.close();
      await daemon.stop();
    }
  });
});
