// Uploads from a thread of their own (worker-uploads.ts), against a real
// daemon: the same blobs and stats as on the main thread, errors that keep
// their kind across the thread, and no process kept alive by the thread.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkerUploads } from '../../src/upload/worker-uploads.js';
import { noUploads } from '../../src/upload/batch-queue.js';
import { blake3 } from '../../src/castore/digest.js';
import { CastoreError } from '../../src/castore/errors.js';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { startDaemonProcess } from '../helpers/daemon.js';

const FAST_RETRY = { attempts: 2, baseMs: 1, maxMs: 2 };

async function readAll(blobs: GrpcBlobService, digest: Buffer): Promise<Buffer | undefined> {
  const stream = await blobs.read(digest);
  if (!stream) return undefined;
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

it('stores bytes and files from the upload thread, each digest once, with the stats of the run', async () => {
  const d = await startDaemonProcess();
  const tmp = await mkdtemp(join(tmpdir(), 'worker-uploads-'));
  const reader = new GrpcBlobService(d.addr);
  const up = new WorkerUploads({ addr: d.addr, concurrency: 8, retry: FAST_RETRY });
  try {
    const small = Array.from({ length: 300 }, (_, i) => Buffer.from(`small blob ${i}\n`.repeat(i + 1)));
    const large = Buffer.alloc(3 << 20, 7);
    large.write('a file read by the upload thread itself');
    const file = join(tmp, 'large');
    await writeFile(file, large);
    const empty = Buffer.alloc(0);

    // ensure() takes the bytes (they may move to the upload thread): it gets copies.
    await Promise.all([
      ...small.map((b) => up.ensure(blake3(b), b.length, { bytes: Buffer.from(b) })),
      up.ensure(blake3(small[5]), small[5].length, { bytes: Buffer.from(small[5]) }), // again: not sent twice
      up.ensure(blake3(large), large.length, { file: Buffer.from(file) }),
      up.ensure(blake3(empty), 0, { bytes: Buffer.alloc(0) }),
    ]);
    assert.equal(up.stats.blobsSent, 302);
    assert.equal(up.stats.bytesSent, small.reduce((s, b) => s + b.length, 0) + large.length);
    for (const b of [...small, large, empty]) assert.deepEqual(await readAll(reader, blake3(b)), b);

    // A blob the store has (over the Stat-first size) is skipped by a new run.
    const again = new WorkerUploads({ addr: d.addr, concurrency: 8, retry: FAST_RETRY });
    await again.ensure(blake3(large), large.length, { file: Buffer.from(file) });
    assert.deepEqual(again.stats, { ...noUploads(), blobsSkipped: 1 });
    await again.close();
  } finally {
    await up.close();
    await reader.close();
    await rm(tmp, { recursive: true, force: true });
    await d.stop();
  }
});

it('errors cross the thread with their kind; after close() uploads fail at once', async () => {
  const ro = await startDaemonProcess({ args: ['--store', 'memory://', '--read-only'] });
  const up = new WorkerUploads({ addr: ro.addr, concurrency: 4, retry: FAST_RETRY });
  try {
    const b = Buffer.from('refused');
    await assert.rejects(up.ensure(blake3(b), b.length, { bytes: b }), (err: unknown) => {
      assert.ok(err instanceof CastoreError);
      assert.equal(err.kind, 'read-only');
      return true;
    });
    const missing = '/nonexistent/worker-uploads-test-file';
    await assert.rejects(up.ensure(Buffer.alloc(32, 1), 5 << 20, { file: missing }), new RegExp(missing));
    await up.close();
    await assert.rejects(up.ensure(blake3(b), b.length, { bytes: b }), /closed/);
  } finally {
    await up.close();
    await ro.stop();
  }
});

it('a daemon that is gone fails the uploads (after retries) instead of hanging', async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://'] });
  const addr = d.addr;
  await d.stop();
  const up = new WorkerUploads({ addr, concurrency: 4, retry: FAST_RETRY });
  try {
    const b = Buffer.from('nobody listens');
    await assert.rejects(up.ensure(blake3(b), b.length, { bytes: b }), (err: unknown) => err instanceof CastoreError && err.kind === 'unavailable');
  } finally {
    await up.close();
  }
});

/**
 * Runs `body` in a child process (so a thread left running would keep it
 * alive past the timeout) with WorkerUploads, blake3 and `uploads()`, a new
 * WorkerUploads to the daemon at `addr`; resolves to what it printed.
 */
async function inChild(addr: string, body: string): Promise<string> {
  const script = `
    const { WorkerUploads } = await import(${JSON.stringify(new URL('../../src/upload/worker-uploads.js', import.meta.url).href)});
    const { blake3 } = await import(${JSON.stringify(new URL('../../src/castore/digest.js', import.meta.url).href)});
    const uploads = () => new WorkerUploads({ addr: ${JSON.stringify(addr)}, concurrency: 4, retry: { attempts: 1, baseMs: 1, maxMs: 1 } });
    ${body}`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
  return stdout.trim();
}

it('an upload thread whose owner never closes it does not keep the process alive', async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://'] });
  try {
    const out = await inChild(d.addr, `
      const up = uploads();
      const b = Buffer.from('left open');
      await up.ensure(blake3(b), b.length, { bytes: b });
      console.log('stored');`);
    assert.equal(out, 'stored');
  } finally {
    await d.stop();
  }
});

it('a thread started ahead of any blob (start()) runs before the first blob, and does not keep a process that never closes it alive', async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://'] });
  try {
    const out = await inChild(d.addr, `
      const idle = uploads();
      idle.start();
      const used = uploads();
      used.start();
      const thread = used.worker;
      const b = Buffer.from('sent to a thread started early');
      await used.ensure(blake3(b), b.length, { bytes: b });
      console.log(idle.worker.threadId > 0, thread.threadId > 0 && used.worker === thread);`);
    assert.equal(out, 'true true');
    const reader = new GrpcBlobService(d.addr);
    try {
      assert.ok(await reader.stat(blake3(Buffer.from('sent to a thread started early'))), 'the daemon has the blob');
    } finally {
      await reader.close();
    }
  } finally {
    await d.stop();
  }
});

it('closing with uploads still queued fails them and starts no thread that would keep the process alive', async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://'] });
  try {
    // A copy failing half-way closes its uploader with blobs queued and not yet handed to the thread.
    const out = await inChild(d.addr, `
      const up = uploads();
      const queued = [1, 2, 3].map((i) => { const b = Buffer.from('queued ' + i); return up.ensure(blake3(b), b.length, { bytes: b }); });
      await up.close();
      const outcomes = await Promise.allSettled(queued);
      console.log(outcomes.map((o) => o.status).join(' '));`);
    assert.equal(out, 'rejected rejected rejected');
  } finally {
    await d.stop();
  }
});

it('sends small files from memory shared with the upload thread, and reuses that memory', async () => {
  const d = await startDaemonProcess();
  const reader = new GrpcBlobService(d.addr);
  const up = new WorkerUploads({ addr: d.addr, concurrency: 8, retry: FAST_RETRY });
  const size = 640 << 10;
  const blob = (i: number, mem: Buffer): Buffer => {
    mem.fill(i & 0xff);
    mem.writeUInt32LE(i, 0);
    return mem;
  };
  try {
    // One at a time: every file is read into the same shared memory.
    for (let i = 0; i < 64; i++) {
      const mem = up.memoryFor(size);
      assert.ok(mem.buffer instanceof SharedArrayBuffer, 'a small file is read into shared memory');
      await up.ensure(blake3(blob(i, mem)), size, { bytes: mem });
    }
    assert.deepEqual(up.sharedMemory, { made: 1, free: 0 });

    // 160 MiB at once (as far as room() lets): far more than the slabs hold.
    const digests: Buffer[] = [];
    const uploads: Promise<void>[] = [];
    let shared = 0;
    for (let i = 64; i < 320; i++) {
      await up.room();
      const mem = up.memoryFor(size);
      if (mem.buffer instanceof SharedArrayBuffer) shared++;
      digests[i] = blake3(blob(i, mem));
      uploads.push(up.ensure(digests[i], size, { bytes: mem }));
    }
    // Memory asked for and never handed over goes back too.
    up.release(up.memoryFor(1000));
    await Promise.all(uploads);
    assert.equal(up.stats.blobsSent, 320);
    const mem = up.sharedMemory;
    assert.ok(shared > 0 && mem.made <= 10, `${shared} blobs in shared memory, ${mem.made} slabs made`);
    assert.equal(mem.free, mem.made - 1, 'every slab but the current one is free again');
    for (const i of [0, 63, 64, 200, 319]) {
      const stored = await readAll(reader, blake3(blob(i, Buffer.alloc(size))));
      assert.deepEqual(stored, blob(i, Buffer.alloc(size)), `blob ${i}`);
    }
  } finally {
    await up.close();
    await reader.close();
    await d.stop();
  }
});
