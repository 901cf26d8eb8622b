// Delta uploads end to end (src/castore/delta/, src/upload/delta-upload.ts,
// src/server/delta-handlers.ts): real Nix paths, a real daemon process, its
// on-disk store. A changed path's large files go as the bytes that changed
// plus ranges of the blobs the daemon has; the daemon composes, checks and
// stores them; its hints survive a SIGKILL; a stale hint or a hostile delta
// costs a whole upload or an error, never a wrong blob.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, mkdir, writeFile, readdir, cp } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, CLI, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixStoreDump, requireNix, runNix } from '../helpers/nix.js';
import { runCli } from './run-cli.js';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { HookFinder } from '../../src/castore/delta/chunking.js';
import type { BlobDeltas, DeltaPart } from '../../src/castore/delta/delta-messages.js';
import { blobDeltaServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { CastoreError } from '../../src/castore/errors.js';
import { seededRandom, fuzzSeed } from '../helpers/seeded-random.js';

const MiB = 1 << 20;
const seed = fuzzSeed();
const rng = seededRandom(seed);

let tmp: string;
let daemon: DaemonProcess;
let dataDir: string;
let pathA: string;
const big: Record<string, Buffer> = {};

async function addPath(name: string, files: Record<string, Buffer>): Promise<string> {
  const dir = join(tmp, 'src', name);
  await mkdir(dir, { recursive: true });
  for (const [f, bytes] of Object.entries(files)) await writeFile(join(dir, f), bytes);
  return (await runNix('nix-store', ['--add', dir])).stdout.toString().trim();
}

interface Report {
  bytesSent: number;
  blobsSent: number;
  blobsAsDeltas: number;
  bytesReused: number;
}

async function copy(path: string, addr = daemon.addr): Promise<Report> {
  const r = await runCli(['copy', '--store', addr, path, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Report;
}

async function assertNarServed(path: string): Promise<void> {
  const r = spawnSync(process.execPath, [CLI, 'nar', '--store', daemon.addr, path], { maxBuffer: 1 << 30, env: nixEnv() });
  assert.equal(r.status, 0, r.stderr.toString());
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(r.stdout), sha(await nixStoreDump(path)), `the daemon's NAR of ${path} is nix-store --dump's`);
}

function hooksOf(bytes: Buffer): Buffer[] {
  const f = new HookFinder(bytes.length);
  f.push(bytes, 0);
  return f.hooks;
}

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'delta-copy-'));
  dataDir = join(tmp, 'data');
  big.one = rng.bytes(3 * MiB + 11);
  big.two = rng.bytes(5 * MiB + 22);
  big.three = rng.bytes(9 * MiB + 33);
  pathA = await addPath('pkg-1.0', { ...big, small: Buffer.from('a small file\n') });
  daemon = await startDaemonProcess({ dataDir, args: daemonArgs() });
});

// As a daemon on another machine: large files are sent (here as deltas), not read from this one's Nix store.
const daemonArgs = () => ['--data', dataDir, '--metrics', '127.0.0.1:0', '--local-files', 'none'];

/** One sample of the daemon's /metrics (0 when absent). */
async function metric(series: string): Promise<number> {
  const url = /metrics on (http:\/\/\S+)\/metrics/.exec(daemon.stderr())?.[1];
  assert.ok(url, daemon.stderr());
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

after(async () => {
  await daemon?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe(`copy sends a changed path's large files as deltas (seed ${seed})`, () => {
  it('a rebuilt path: only the changed bytes go, and the daemon serves the same NAR as Nix', async () => {
    const first = await copy(pathA);
    assert.equal(first.blobsAsDeltas, 0, 'nothing to take from yet');
    const two = Buffer.concat([big.two.subarray(0, 2_500_000), Buffer.from('inserted '.repeat(30)), big.two.subarray(2_500_000)]);
    const three = Buffer.from(big.three);
    three.fill(1, 6_000_000, 6_000_016);
    const pathB = await addPath('pkg-1.1', { one: Buffer.concat([big.one, Buffer.from('changed\n')]), two, three, small: Buffer.from('a small file\n') });
    const r = await copy(pathB);
    const largeBytes = big.one.length + 8 + two.length + three.length;
    assert.equal(r.blobsAsDeltas, 3, JSON.stringify(r));
    assert.ok(r.bytesSent < 0.1 * largeBytes, `${r.bytesSent} of ${largeBytes} bytes sent`);
    assert.equal(r.bytesSent + r.bytesReused, largeBytes);
    // The daemon counts the same: 3 bases not found (the first copy), 3 found, the bytes by source.
    assert.equal(await metric('nix_castore_delta_find_base_total{result="none"}'), 3);
    assert.equal(await metric('nix_castore_delta_find_base_total{result="found"}'), 3);
    assert.equal(await metric('nix_castore_delta_bytes_total{source="base"}'), r.bytesReused);
    assert.equal(await metric('nix_castore_delta_bytes_total{source="sent"}'), r.bytesSent);
    await assertNarServed(pathB);
    const fsck = spawnSync(process.execPath, [CLI, 'fsck', '--data', dataDir, '--nar'], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
  });

  it('hints survive the daemon killed with SIGKILL', async () => {
    await daemon.stop('SIGKILL');
    daemon = await startDaemonProcess({ dataDir, args: daemonArgs() });
    const pathC = await addPath('pkg-1.2', { three: Buffer.concat([big.three, Buffer.from('one more line\n')]) });
    const r = await copy(pathC);
    assert.equal(r.blobsAsDeltas, 1, JSON.stringify(r));
    assert.ok(r.bytesSent < MiB, `${r.bytesSent} bytes sent`);
    await assertNarServed(pathC);
  });
});

describe('hostile or failed deltas store nothing wrong', () => {
  let blobs: GrpcBlobService;
  let deltas: BlobDeltas;
  const base = () => blake3(big.one);

  before(async () => {
    blobs = new GrpcBlobService(daemon.addr);
    deltas = (await blobs.deltas())!;
    assert.ok(deltas, 'the daemon offers delta uploads');
  });
  after(() => blobs.close());

  async function refused(kind: string, p: Promise<unknown>, message: RegExp): Promise<void> {
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof CastoreError, String(err));
      assert.equal(err.kind, kind, err.message);
      assert.match(err.message, message);
      return true;
    });
  }

  async function* ops(...list: ({ offset: number; length: number } | { data: Uint8Array })[]) {
    yield* list;
  }

  it('findBase finds the newest blob with those hooks, with chunks that cover it; too many or malformed hooks are refused', async () => {
    const found = await deltas.findBase(hooksOf(Buffer.concat([big.one, Buffer.from('x')])));
    assert.ok(found);
    // pkg-1.1's `one` (pkg-1.0's with a line appended) has the same hooks and came later.
    const newest = Buffer.concat([big.one, Buffer.from('changed\n')]);
    assert.deepEqual(found.base, blake3(newest));
    assert.equal(found.baseSize, newest.length);
    assert.equal(found.chunks.reduce((n, c) => n + c.length, 0), newest.length);
    assert.equal(await deltas.findBase([blake3(Buffer.from('no such hook'))]), undefined);
    await refused('invalid', deltas.findBase(Array.from({ length: 4097 }, (_, i) => blake3(Buffer.from(String(i))))), /at most 4096/);
    // Hooks that are not whole digests, sent raw (our client would not encode them).
    const client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest('/nixcastore.v1.BlobDeltaService/FindBase', (b: Buffer) => b, (b: Buffer) => b, Buffer.concat([Buffer.from([0x0a, 31]), Buffer.alloc(31)]), (e) => resolve(e)),
      );
      assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /32-byte/);
    } finally {
      client.close();
    }
  });

  it('parts out of shape are refused: no header first, a second header, more parts than the size allows', async () => {
    const def = blobDeltaServiceDef().Put;
    const send = (parts: DeltaPart[]) => {
      const client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
      return new Promise<grpc.ServiceError | null>((resolve) => {
        const call = client.makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, (err) => {
          client.close();
          resolve(err);
        });
        for (const p of parts) call.write(p);
        call.end();
      });
    };
    const header: DeltaPart = { kind: 'header', digest: blake3(Buffer.from('x')), size: 1, base: base() };
    const noHeader = await send([{ kind: 'data', data: Buffer.from('x') }]);
    assert.equal(noHeader?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(noHeader.details, /first DeltaPart must be the header/);
    const twice = await send([header, header]);
    assert.equal(twice?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(twice.details, /header after the first/);
    // A blob of 8 KiB may come in 66 parts at most: 67 one-byte copies are refused before the 67th is read from the base.
    const small = { ...header, size: 8192 };
    const many = await send([small, ...Array.from({ length: 67 }, (_, i): DeltaPart => ({ kind: 'copy', offset: i, length: 1 }))]);
    assert.equal(many?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(many.details, /more than 66 ops/);
    // Ranges going back make the daemon read the base again from its start: a few times over at most.
    const backwards = await send([small, ...Array.from({ length: 20 }, (): DeltaPart => ({ kind: 'copy', offset: big.one.length - 1 - 100, length: 1 }))]);
    assert.equal(backwards?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(backwards.details, /out of order/);
  });

  it('a valid delta made by hand is stored and reads back', async () => {
    const target = Buffer.concat([big.one.subarray(1000, 2 * MiB), Buffer.from('middle'), big.one.subarray(0, 100)]);
    const digest = blake3(target);
    const got = await deltas.putDelta({ digest, size: target.length, base: base() }, ops({ offset: 1000, length: 2 * MiB - 1000 }, { data: Buffer.from('middle') }, { offset: 0, length: 100 }));
    assert.deepEqual(got, digest);
    const back: Buffer[] = [];
    for await (const c of (await blobs.read(digest))!) back.push(Buffer.from(c));
    assert.ok(Buffer.concat(back).equals(target));
  });

  it('a range past the base, a result that is not the digest announced, too many or too few bytes, an absent base: each refused, nothing stored', async () => {
    const target = Buffer.concat([big.one.subarray(0, 100), Buffer.from('tail')]);
    const digest = blake3(target);
    const header = { digest, size: target.length, base: base() };
    await refused('invalid', deltas.putDelta(header, ops({ offset: big.one.length - 50, length: 100 }, { data: Buffer.from('tail') })), /not within the base/);
    await refused('invalid', deltas.putDelta(header, ops({ offset: 1, length: 100 }, { data: Buffer.from('tail') })), /not .* as announced/);
    await refused('invalid', deltas.putDelta(header, ops({ offset: 0, length: 100 }, { data: Buffer.from('tail and more') })), /more than the 104 bytes/);
    await refused('invalid', deltas.putDelta(header, ops({ offset: 0, length: 100 })), /holds 100 bytes, 104 were announced/);
    await refused('precondition', deltas.putDelta({ ...header, base: blake3(Buffer.from('absent')) }, ops({ offset: 0, length: 100 })), /not in the store/);
    assert.equal(await blobs.stat(digest), undefined, 'nothing stored under the digest announced');
  });

  it('a delta whose client goes away mid-stream leaves nothing behind', async () => {
    const target = Buffer.concat([big.two.subarray(0, 3 * MiB), rng.bytes(MiB)]);
    const digest = blake3(target);
    async function* dying() {
      yield { offset: 0, length: 3 * MiB };
      yield { data: target.subarray(3 * MiB, 3 * MiB + 1000) };
      throw new Error('the client died');
    }
    await assert.rejects(deltas.putDelta({ digest, size: target.length, base: blake3(big.two) }, dying()), /the client died/);
    assert.equal(await blobs.stat(digest), undefined);
    // The daemon's temp files of the abandoned blob are gone once it saw the cancel.
    for (let i = 0; i < 50 && (await readdir(join(dataDir, 'tmp'))).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await readdir(join(dataDir, 'tmp')), []);
  });

  it('a hint to a blob the collector deleted: the file goes whole', async () => {
    const four = rng.bytes(2 * MiB + 44);
    await copy(await addPath('other-1.0', { four }));
    // Nothing pinned, nothing kept: every path and blob goes; the hooks stay in the index.
    const gc = await runCli(['gc', '--store', daemon.addr, '--keep-since', '0', '--grace', '0']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(await blobs.stat(blake3(four)), undefined);
    const path = await addPath('other-1.1', { four: Buffer.concat([four, Buffer.from('changed\n')]) });
    const r = await copy(path);
    assert.equal(r.blobsAsDeltas, 0, JSON.stringify(r));
    assert.equal(r.bytesSent, four.length + 8);
    await assertNarServed(path);
  });

  it('a collector deleting the base while deltas against it are sent: every copy completes, the store stays whole', async () => {
    for (let round = 0; round < 3; round++) {
      const five = rng.bytes(4 * MiB + round);
      await copy(await addPath(`race-${round}-1.0`, { five }));
      const next = await addPath(`race-${round}-1.1`, { five: Buffer.concat([five, Buffer.from(`round ${round}\n`)]) });
      // Nothing kept: the collector deletes the base (and maybe the new path) while the copy sends its delta.
      const [gc, r] = await Promise.all([runCli(['gc', '--store', daemon.addr, '--keep-since', '0', '--grace', '0']), runCli(['copy', '--store', daemon.addr, next, '--json'])]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.equal(r.code, 0, r.stderr);
      // Copied again in case the collector took it after it was published: then served as Nix has it.
      await copy(next);
      await assertNarServed(next);
      const fsck = spawnSync(process.execPath, [CLI, 'fsck', '--data', dataDir, '--nar'], { encoding: 'utf8' });
      assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
    }
  });
});

describe('who may send deltas', () => {
  it('a daemon with a token refuses them without it; a read-only one does not offer them', async () => {
    const tokenFile = join(tmp, 'token');
    await writeFile(tokenFile, 'tok-delta-0123456789abcdef0123456789\n', { mode: 0o600 });
    const guarded = await startDaemonProcess({ dataDir: join(tmp, 'guarded'), args: ['--data', join(tmp, 'guarded'), '--auth-token-file', tokenFile] });
    const readOnlyDir = join(tmp, 'ro');
    await cp(dataDir, readOnlyDir, { recursive: true });
    const ro = await startDaemonProcess({ dataDir: readOnlyDir, args: ['--data', readOnlyDir, '--read-only'] });
    const a = new GrpcBlobService(guarded.addr);
    const b = new GrpcBlobService(ro.addr);
    try {
      await assert.rejects(a.deltas(), (err: Error) => err instanceof CastoreError && err.kind === 'unauthenticated');
      assert.equal(await b.deltas(), undefined);
    } finally {
      await a.close();
      await b.close();
      await guarded.stop();
      await ro.stop();
    }
  });
});
