// Large files read by the daemon itself (nixcastore.v1.BlobFromPathService:
// src/server/from-path.ts, src/upload/local-read.ts): real Nix paths, real
// daemon processes on unix sockets and TCP. A copy into a daemon on this
// machine sends the paths of its large files, not their bytes; the daemon
// hashes what it reads and stores only what was announced; it reads only
// world-readable files below its roots, for unix-socket clients with the
// token, and leaves nothing behind when refused or abandoned.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:http2';
import { mkdtemp, rm, mkdir, writeFile, readdir, symlink, chmod, truncate } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { startDaemonProcess, CLI, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixStoreDump, requireNix, runNix } from '../helpers/nix.js';
import { runCli } from './run-cli.js';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { blobFromPathServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { CastoreError, type ErrorKind } from '../../src/castore/errors.js';
import { seededRandom, fuzzSeed } from '../helpers/seeded-random.js';

const MiB = 1 << 20;
const rng = seededRandom(fuzzSeed());

let tmp: string;
let daemon: DaemonProcess;
let dataDir: string;
let storePath: string;
const big: Record<string, Buffer> = {};

async function addPath(name: string, files: Record<string, Buffer>, links: Record<string, string> = {}): Promise<string> {
  const dir = join(tmp, 'src', name);
  await mkdir(dir, { recursive: true });
  for (const [f, bytes] of Object.entries(files)) await writeFile(join(dir, f), bytes);
  for (const [l, target] of Object.entries(links)) await symlink(target, join(dir, l));
  return (await runNix('nix-store', ['--add', dir])).stdout.toString().trim();
}

interface Report {
  bytesSent: number;
  blobsSent: number;
  blobsReadByStore: number;
  bytesReadByStore: number;
}

async function copy(path: string, addr: string): Promise<Report> {
  const r = await runCli(['copy', '--store', addr, path, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Report;
}

async function metric(d: DaemonProcess, series: string): Promise<number> {
  const url = /metrics on (http:\/\/\S+)\/metrics/.exec(d.stderr())?.[1];
  assert.ok(url, d.stderr());
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

function fsckClean(dir: string): void {
  const fsck = spawnSync(process.execPath, [CLI, 'fsck', '--data', dir, '--nar'], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
}

async function refused(kind: ErrorKind, p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof CastoreError, err.stack);
    assert.equal(err.kind, kind, err.message);
    assert.match(err.message, message);
    return true;
  });
}

function grpcFrame(req: { digest: Buffer; size: number; path: Buffer }): Buffer {
  const body = blobFromPathServiceDef().Put.requestSerialize(req);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}

/** One BlobFromPathService Put over plain HTTP/2: its grpc-status and grpc-message. */
async function rawUnary(url: string, req: { digest: Buffer; size: number; path: Buffer }): Promise<{ status?: string; message: string }> {
  const session = connect(url);
  try {
    const stream = session.request({ ':method': 'POST', ':path': '/nixcastore.v1.BlobFromPathService/Put', 'content-type': 'application/grpc', te: 'trailers' });
    stream.end(grpcFrame(req));
    return await new Promise((resolve, reject) => {
      let headers: Record<string, unknown> = {};
      stream.on('response', (h) => (headers = h));
      stream.on('trailers', (t) => (headers = { ...headers, ...t }));
      stream.on('error', reject);
      stream.resume();
      stream.on('close', () => resolve({ status: headers['grpc-status'] as string | undefined, message: String(headers['grpc-message'] ?? '') }));
    });
  } finally {
    session.close();
  }
}

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'from-path-'));
  dataDir = join(tmp, 'data');
  big.one = rng.bytes(2 * MiB + 7);
  big.two = rng.bytes(5 * MiB + 13);
  storePath = await addPath('local-1.0', { ...big, small: Buffer.from('a small file\n') }, { escape: '/etc/hostname' });
  // --local-files also names a directory of our own, where files of any mode can be made.
  // Open to everyone (mkdtemp makes it 0700), as the path to a root must be.
  await chmod(tmp, 0o755);
  await mkdir(join(tmp, 'own'), { recursive: true });
  // And a root that is open itself but inside a directory others may not enter.
  await mkdir(join(tmp, 'closed-above', 'pub'), { recursive: true, mode: 0o755 });
  await chmod(join(tmp, 'closed-above'), 0o700);
  await chmod(join(tmp, 'closed-above', 'pub'), 0o755);
  daemon = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--metrics', '127.0.0.1:0', '--local-files', '/nix/store', '--local-files', join(tmp, 'own'), '--local-files', join(tmp, 'closed-above', 'pub')] });
});

after(async () => {
  await daemon?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('large files read by a daemon on this machine', () => {
  it('copy sends their paths: the daemon reads and stores them, the NAR served is Nix\'s', async () => {
    const r = await copy(storePath, daemon.addr);
    assert.equal(r.blobsReadByStore, 2, JSON.stringify(r));
    assert.equal(r.bytesReadByStore, big.one.length + big.two.length);
    assert.ok(r.bytesSent < 1024, `only the small file's bytes cross the socket: ${r.bytesSent}`);
    assert.equal(await metric(daemon, 'nix_castore_blobs_from_path_total'), 2);
    const blobs = new GrpcBlobService(daemon.addr);
    try {
      for (const b of Object.values(big)) assert.ok(await blobs.stat(blake3(b)), 'stored under its digest');
    } finally {
      await blobs.close();
    }
    const nar = spawnSync(process.execPath, [CLI, 'nar', '--store', daemon.addr, storePath], { maxBuffer: 1 << 30, env: nixEnv() });
    assert.equal(nar.status, 0, nar.stderr.toString());
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(nar.stdout), sha(await nixStoreDump(storePath)));
    fsckClean(dataDir);
  });

  it('refuses, before reading, what a local user could not read or what lies elsewhere, and stores nothing', async () => {
    const blobs = new GrpcBlobService(daemon.addr);
    try {
      const local = await blobs.fromPath();
      assert.ok(local, 'offered over the unix socket');
      assert.ok(local.roots.includes('/nix/store'), local.roots.join());
      const etc = readFileSync('/etc/hostname');
      // A symlink in a store path leads out of the roots; so does a path outside.
      await refused('precondition', local.put(blake3(etc), etc.length, `${storePath}/escape`), /is not below/);
      await refused('precondition', local.put(blake3(etc), etc.length, '/etc/hostname'), /is not below/);
      await refused('precondition', local.put(blake3(etc), etc.length, `${storePath}/../../../etc/hostname`), /is not below/);
      await refused('precondition', local.put(blake3(Buffer.alloc(0)), 0, `${storePath}/absent`), /ENOENT/);
      // In our own root: a file only its owner may read, one in a directory others may not enter, a directory.
      const secret = rng.bytes(4096);
      await writeFile(join(tmp, 'own', 'secret'), secret, { mode: 0o600 });
      await chmod(join(tmp, 'own', 'secret'), 0o600);
      await refused('precondition', local.put(blake3(secret), secret.length, join(tmp, 'own', 'secret')), /not readable by everyone/);
      await mkdir(join(tmp, 'own', 'closed'), { mode: 0o700 });
      await chmod(join(tmp, 'own', 'closed'), 0o700);
      await writeFile(join(tmp, 'own', 'closed', 'file'), secret, { mode: 0o644 });
      await refused('precondition', local.put(blake3(secret), secret.length, join(tmp, 'own', 'closed', 'file')), /not searchable by everyone/);
      // Above a root counts too: every directory up to / must be open.
      await writeFile(join(tmp, 'closed-above', 'pub', 'file'), secret, { mode: 0o644 });
      await chmod(join(tmp, 'closed-above', 'pub', 'file'), 0o644);
      await refused('precondition', local.put(blake3(secret), secret.length, join(tmp, 'closed-above', 'pub', 'file')), /closed-above is not searchable by everyone/);
      await mkdir(join(tmp, 'own', 'open'), { mode: 0o755 });
      await refused('precondition', local.put(blake3(secret), 0, join(tmp, 'own', 'open')), /not a regular file/);
      assert.equal(await blobs.stat(blake3(secret)), undefined);
      assert.equal(await blobs.stat(blake3(etc)), undefined);
      // Malformed requests.
      const one = `${storePath}/one`;
      await refused('invalid', local.put(Buffer.alloc(31), big.one.length, one), /digest must be 32 bytes/);
      await refused('invalid', local.put(blake3(big.one), big.one.length, 'nix/store/x'), /absolute/);
      await refused('invalid', local.put(blake3(big.one), big.one.length, Buffer.from(`${one}\0x`)), /NUL/);
      await refused('invalid', local.put(blake3(big.one), big.one.length, '/' + 'a'.repeat(4096)), /1 to 4096 bytes/);
    } finally {
      await blobs.close();
    }
  });

  it('stores only the blob announced: a wrong digest or size is refused, nothing kept under it', async () => {
    const data = rng.bytes(3 * MiB + 5);
    const p = await addPath('wrong-1.0', { data });
    const blobs = new GrpcBlobService(daemon.addr);
    try {
      const local = (await blobs.fromPath())!;
      await refused('invalid', local.put(blake3(data), data.length + 1, `${p}/data`), /holds 3145733 bytes, not 3145734/);
      assert.equal(await blobs.stat(blake3(data)), undefined, 'the size is checked before reading');
      // The digest only once read: what the file holds is stored under its own digest (as a Put would), nothing under the one announced.
      const other = blake3(Buffer.from('something else'));
      await refused('invalid', local.put(other, data.length, `${p}/data`), /holds blob .*, not .* as announced/);
      assert.equal(await blobs.stat(other), undefined);
    } finally {
      await blobs.close();
    }
    fsckClean(dataDir);
  });

  it('a client that goes away mid-read leaves no blob and no temp file', async () => {
    const file = join(tmp, 'own', 'large');
    await writeFile(file, '');
    await truncate(file, 1 << 30); // sparse: read at memory speed, still a second or more of hashing and writing
    await chmod(file, 0o644);
    const session = connect('http://localhost', { createConnection: () => netConnect(daemon.socket) });
    const stream = session.request({ ':method': 'POST', ':path': '/nixcastore.v1.BlobFromPathService/Put', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    stream.end(grpcFrame({ digest: Buffer.alloc(32, 1), size: 1 << 30, path: Buffer.from(file) }));
    // Once the daemon is writing the blob, the client goes away.
    for (let i = 0; i < 200 && (await readdir(join(dataDir, 'tmp'))).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.notDeepEqual(await readdir(join(dataDir, 'tmp')), [], 'the daemon was writing when the client left');
    stream.close(8); // RST_STREAM CANCEL
    session.destroy();
    for (let i = 0; i < 100 && (await readdir(join(dataDir, 'tmp'))).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await readdir(join(dataDir, 'tmp')), []);
    fsckClean(dataDir);
  });

  it('counts its reads against the daemon\'s memory budget (--max-buffered-bytes)', async () => {
    // 3 MiB: enough for a Put of the 2 MiB file, which holds what it was sent; not with its reads in flight (2 MiB) beside.
    const small = await startDaemonProcess({ args: ['--data', join(tmp, 'small-budget'), '--max-buffered-bytes', '3M'] });
    const blobs = new GrpcBlobService(small.addr);
    try {
      const local = (await blobs.fromPath())!;
      await refused('too-large', local.put(blake3(big.one), big.one.length, `${storePath}/one`), /--max-buffered-bytes/);
      assert.equal(await blobs.stat(blake3(big.one)), undefined);
    } finally {
      await blobs.close();
      await small.stop();
    }
  });

  it('only over a unix socket, with the token, not when read-only or turned off: copy then sends the bytes', async () => {
    const tokenFile = join(tmp, 'token');
    await writeFile(tokenFile, 'tok-from-path-0123456789abcdef012345\n', { mode: 0o600 });
    const tcpDir = join(tmp, 'tcp');
    const tcp = await startDaemonProcess({ dataDir: tcpDir, args: ['--data', tcpDir, '--listen', '127.0.0.1:0'] });
    const guarded = await startDaemonProcess({ dataDir: join(tmp, 'guarded'), args: ['--data', join(tmp, 'guarded'), '--auth-token-file', tokenFile] });
    const ro = await startDaemonProcess({ dataDir: join(tmp, 'ro'), args: ['--data', join(tmp, 'ro'), '--read-only'] });
    const offDir = join(tmp, 'off');
    const off = await startDaemonProcess({ dataDir: offDir, args: ['--data', offDir, '--local-files', 'none'] });
    const port = /grpc\+http:\/\/127\.0\.0\.1:(\d+)/.exec(tcp.stderr())?.[1];
    assert.ok(port, tcp.stderr());
    const overTcp = new GrpcBlobService(`grpc+http://127.0.0.1:${port}`);
    const clients = [overTcp, new GrpcBlobService(guarded.addr), new GrpcBlobService(ro.addr), new GrpcBlobService(off.addr)];
    try {
      assert.equal(await overTcp.fromPath(), undefined, 'a TCP client is not asked to name files');
      await refused('unauthenticated', clients[1].fromPath(), /./);
      assert.equal(await clients[2].fromPath(), undefined);
      assert.equal(await clients[3].fromPath(), undefined);
      // A TCP client that asks anyway is refused (PERMISSION_DENIED).
      const answer = await rawUnary(`http://127.0.0.1:${port}`, { digest: blake3(big.one), size: big.one.length, path: Buffer.from(`${storePath}/one`) });
      assert.equal(answer.status, '7', JSON.stringify(answer));
      assert.match(decodeURI(answer.message), /only for clients on this machine/);
      // The copy still works, sending every byte.
      const r = await copy(storePath, off.addr);
      assert.equal(r.blobsReadByStore, 0);
      assert.ok(r.bytesSent >= big.one.length + big.two.length);
      fsckClean(offDir);
    } finally {
      for (const c of clients) await c.close();
      for (const d of [tcp, guarded, ro, off]) await d.stop();
    }
  });
});
