// GrpcBlobService on the lean node:http2 client against real `nix-castore
// daemon` processes: round trips, statuses, auth, concurrency, and
// connections that fail, drop or come back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemonProcess, waitForSocket, type DaemonProcess } from '../helpers/daemon.js';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind, type ErrorKind } from '../../src/castore/errors.js';
import { AUTH_TOKEN_FILE_ENV } from '../../src/grpc/client-settings.js';
import { parseGrpcAddr } from '../../src/grpc/address.js';
import { H2Connection } from '../../src/grpc/h2/connection.js';
import { EMPTY_DIGEST } from '../helpers/castore-fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function failsWith(kind: ErrorKind, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(isKind(err, kind), `expected a CastoreError '${kind}', got ${err instanceof Error ? `${err.name}: ${err.message}` : err}`);
    assert.match((err as Error).message, pattern);
    return true;
  };
}

/** Deterministic bytes, different per seed. */
function bytes(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A daemon on a socket of our choosing, so that it can be restarted on the same one. */
async function daemonOn(socket: string, dataDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'daemon', '--listen', `unix:${socket}`, '--data', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  await waitForSocket(socket, child, () => log);
  return child;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

describe('lean gRPC client ↔ daemon', () => {
  let daemon: DaemonProcess;
  let blobs: GrpcBlobService;
  before(async () => {
    daemon = await startDaemonProcess();
    blobs = new GrpcBlobService(daemon.addr);
  });
  after(async () => {
    await blobs?.close();
    await daemon?.stop();
  });

  it('Put, Stat and Read round-trip: empty, small, and 40 MiB (more than the flow-control windows)', async () => {
    for (const data of [Buffer.alloc(0), Buffer.from('Hello World!'), bytes(40 * 1024 * 1024 + 3, 1)]) {
      const digest = await putBytes(blobs, data);
      assert.deepEqual(digest, blake3(data));
      assert.deepEqual(await blobs.stat(digest), { chunks: [] });
      const back = await readAll(blobs, digest);
      assert.ok(back?.equals(data), `${data.length} bytes read back`);
    }
    assert.deepEqual(await readAll(blobs, EMPTY_DIGEST), Buffer.alloc(0));
  });

  it('a missing blob: Stat and Read say undefined', async () => {
    const missing = blake3(Buffer.from('never stored'));
    assert.equal(await blobs.stat(missing), undefined);
    assert.equal(await blobs.read(missing), undefined);
  });

  it("keeps the daemon's status: a digest of the wrong length is 'invalid'", async () => {
    await assert.rejects(blobs.stat(new Uint8Array(20)), failsWith('invalid', /^Stat .*: INVALID_ARGUMENT: invalid digest length$/));
    await assert.rejects(blobs.read(new Uint8Array(33)), failsWith('invalid', /^Read .*: INVALID_ARGUMENT: invalid digest length$/));
  });

  it('500 Puts at once, then 500 Stats at once', async () => {
    const data = Array.from({ length: 500 }, (_, i) => bytes(100 + i * 37, 1000 + i));
    const digests = await Promise.all(data.map((d) => putBytes(blobs, d)));
    digests.forEach((d, i) => assert.deepEqual(d, blake3(data[i])));
    const stats = await Promise.all(digests.map((d) => blobs.stat(d)));
    assert.ok(stats.every((s) => s !== undefined));
    assert.ok((await readAll(blobs, digests[499]))!.equals(data[499]));
  });

  it('an aborted Put stores nothing, also when aborted after all bytes were sent', async () => {
    for (const size of [100, 3 * 1024 * 1024]) {
      const data = bytes(size, 77 + size);
      const w = blobs.put();
      await w.write(data);
      await sleep(50); // let the daemon receive all of it
      await w.abort();
      await sleep(50);
      assert.equal(await blobs.stat(blake3(data)), undefined, `${size} bytes`);
    }
  });

  it('a Read abandoned after its first chunk leaves the connection usable', async () => {
    const data = bytes(8 * 1024 * 1024, 5);
    const digest = await putBytes(blobs, data);
    const stream = await blobs.read(digest);
    for await (const c of stream!) {
      assert.ok(c.length > 0);
      break;
    }
    assert.ok((await readAll(blobs, digest))!.equals(data));
  });
});

describe('lean gRPC client ↔ daemon with --auth-token-file / --read-only', () => {
  const TOKEN = 'h2-client-token-1234';
  let tmp: string;
  let tokenFile: string;
  let daemon: DaemonProcess;
  let readOnly: DaemonProcess;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'castore-h2-auth-'));
    tokenFile = join(tmp, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    daemon = await startDaemonProcess({ args: ['--data', join(tmp, 'data'), '--auth-token-file', tokenFile] });
    readOnly = await startDaemonProcess({ args: ['--data', join(tmp, 'ro'), '--read-only'] });
  });
  after(async () => {
    await daemon?.stop();
    await readOnly?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it("a Put without the token is 'unauthenticated'; reads need none", async () => {
    const blobs = new GrpcBlobService(daemon.addr);
    try {
      await assert.rejects(putBytes(blobs, Buffer.from('no token')), failsWith('unauthenticated', /^blob Put: UNAUTHENTICATED: writes need an authorization: Bearer <token> header$/));
      assert.equal(await blobs.stat(blake3(Buffer.from('no token'))), undefined);
    } finally {
      await blobs.close();
    }
  });

  it(`sends the token from $${AUTH_TOKEN_FILE_ENV} on every call`, async () => {
    process.env[AUTH_TOKEN_FILE_ENV] = tokenFile;
    let blobs: GrpcBlobService;
    try {
      blobs = new GrpcBlobService(daemon.addr);
    } finally {
      delete process.env[AUTH_TOKEN_FILE_ENV];
    }
    try {
      const data = Buffer.from('with token');
      assert.deepEqual(await putBytes(blobs, data), blake3(data));
      assert.ok(await blobs.stat(blake3(data)));
    } finally {
      await blobs.close();
    }
  });

  it("a Put to a read-only daemon is 'read-only'", async () => {
    const blobs = new GrpcBlobService(readOnly.addr);
    try {
      await assert.rejects(putBytes(blobs, Buffer.from('x')), failsWith('read-only', /PERMISSION_DENIED: the daemon is read-only/));
    } finally {
      await blobs.close();
    }
  });
});

describe('lean gRPC client: connections that fail, drop and come back', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'castore-h2-conn-'));
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  it("no daemon on the socket, or none on the port: 'unavailable'", async () => {
    for (const addr of [`grpc+unix://${join(tmp, 'nobody.sock')}`, 'grpc+http://127.0.0.1:1']) {
      const blobs = new GrpcBlobService(addr);
      try {
        await assert.rejects(blobs.stat(EMPTY_DIGEST), failsWith('unavailable', /^Stat .*: UNAVAILABLE: connect E(NOENT|CONNREFUSED)/), addr);
        await assert.rejects(blobs.read(EMPTY_DIGEST), failsWith('unavailable', /^Read .*: UNAVAILABLE/), addr);
        await assert.rejects(putBytes(blobs, Buffer.from('x')), failsWith('unavailable', /^blob Put: UNAVAILABLE/), addr);
      } finally {
        await blobs.close();
      }
    }
  });

  it('the daemon restarted on the same socket: the next call dials again and succeeds', async () => {
    const socket = join(tmp, 'restart.sock');
    const dataDir = join(tmp, 'restart-data');
    let child = await daemonOn(socket, dataDir);
    const blobs = new GrpcBlobService(`grpc+unix://${socket}`);
    try {
      const digest = await putBytes(blobs, Buffer.from('before the restart'));
      await stop(child);
      await assert.rejects(blobs.stat(digest), failsWith('unavailable', /UNAVAILABLE/), 'while it is down');
      child = await daemonOn(socket, dataDir);
      assert.ok(await blobs.stat(digest));
      assert.equal((await readAll(blobs, digest))?.toString(), 'before the restart');
      // And once more, without a failed call in between.
      await stop(child);
      child = await daemonOn(socket, dataDir);
      assert.deepEqual(await putBytes(blobs, Buffer.from('after')), blake3(Buffer.from('after')));
    } finally {
      await blobs.close();
      await stop(child);
    }
  });

  it("the daemon killed in the middle of a Put: 'unavailable'", async () => {
    const socket = join(tmp, 'kill.sock');
    const child = await daemonOn(socket, join(tmp, 'kill-data'));
    const blobs = new GrpcBlobService(`grpc+unix://${socket}`);
    try {
      const w = blobs.put();
      await w.write(bytes(1 << 20, 9));
      child.kill('SIGKILL');
      await assert.rejects(async () => {
        for (let i = 0; i < 200; i++) await w.write(bytes(1 << 20, i));
        await w.close();
      }, failsWith('unavailable', /^blob Put: UNAVAILABLE/));
    } finally {
      await blobs.close();
      await stop(child);
    }
  });

  it('waiting for a connection gives up with the reason (10 s for ?wait-connect=1; 400 ms here)', async () => {
    const addr = `grpc+unix://${join(tmp, 'never.sock')}?wait-connect=1`;
    const conn = new H2Connection(addr, parseGrpcAddr(addr), undefined);
    try {
      await assert.rejects(conn.waitConnected(400), (err: Error) => err.message.startsWith(`cannot connect to ${addr}: connect ENOENT`));
    } finally {
      conn.close();
    }
  });

  it('?wait-connect=1 waits for a daemon that is still starting', async () => {
    const socket = join(tmp, 'late.sock');
    const blobs = new GrpcBlobService(`grpc+unix://${socket}?wait-connect=1`);
    let child: ChildProcess | undefined;
    try {
      const stat = blobs.stat(EMPTY_DIGEST);
      await sleep(300);
      child = await daemonOn(socket, join(tmp, 'late-data'));
      assert.equal(await stat, undefined);
    } finally {
      await blobs.close();
      if (child) await stop(child);
    }
  });
});
