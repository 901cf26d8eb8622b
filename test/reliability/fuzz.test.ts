// Wire fuzzing against a real daemon process on a unix socket, seeded:
// the seed is printed on stderr, and FUZZ_SEED=<n> replays a run exactly
// (cases are generated from the seed alone, before anything is sent).
//
//  * malformed protobuf (truncated varints, lengths past the end, wrong wire
//    types, field 0, groups, overlong varints, random garbage) to every
//    method of every service, under tvix.* and snix.* → INVALID_ARGUMENT;
//  * unknown fields and padded varints are ignored; what is stored is the
//    canonical encoding;
//  * messages over 4 MiB → RESOURCE_EXHAUSTED on every method;
//  * ≥ 1,000 mutated Directory Put streams and ≥ 1,000 mutated PathInfos:
//    the daemon's answer must match an independent oracle (oracle.ts,
//    written from castore.md §3, wire.md §5.2 and store.md §3.3); whatever
//    it accepted must read back canonically; afterwards the store on disk
//    must hold exactly the accepted objects, each valid; the daemon must
//    stay healthy after every batch and exit cleanly.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { blobServiceDef, directoryServiceDef, pathInfoServiceDef, PACKAGES } from '../../src/grpc/definitions.js';
import { checkHealth } from '../../src/grpc/health-client.js';
import { blake3 } from '../../src/castore/digest.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { storedBlobs, storedDirectories } from '../helpers/stored-blobs.js';
import { Rng, fuzzSeed } from '../helpers/seeded-random.js';
import {
  Enc,
  Malformed,
  SCHEMAS,
  decode,
  decodeDirectory,
  decodePathInfo,
  directoryDigest,
  directoryPutOutcome,
  directoryValid,
  encodeDirectory,
  encodePathInfo,
  nix32Encode,
  pathInfoKey,
  sizes,
  type ODirectory,
  type OPathInfo,
  type Schema,
} from './oracle.js';
import { EMPTY_BLOB, directoryCase, fixtureClosures, pathInfoCase, type Present } from './mutate.js';

const SEED = fuzzSeed();
console.error(`fuzz: seed ${SEED} — replay with FUZZ_SEED=${SEED}`);
const DIR_CASES = Number(process.env.FUZZ_DIR_CASES || 1200);
const PATHINFO_CASES = Number(process.env.FUZZ_PATHINFO_CASES || 1200);
/** RPCs in flight at once, and cases between two health checks. */
const CONCURRENCY = 32;
const BATCH = 300;

let daemon: DaemonProcess;
let client: grpc.Client;

/** Everything the store must hold at the end, by hex digest / key. */
const expectedBlobs = new Set<string>();
/** Sizes of the blobs the daemon has, by hex digest: Directory Put checks files against them. */
const blobSizes = new Map<string, number>();
const expectedDirs = new Map<string, Buffer>();
const expectedPathInfos = new Map<string, Buffer[]>();

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ------------------------------------------------------------- raw calls

interface Result {
  code: status;
  details: string;
  msgs: Buffer[];
}
const identity = (b: Buffer) => b;
const opts = () => ({ deadline: Date.now() + 60_000 });
const fromErr = (err: grpc.ServiceError, msgs: Buffer[] = []): Result => ({ code: err.code, details: err.details, msgs });

function rawUnary(path: string, req: Buffer): Promise<Result> {
  return new Promise((resolve) =>
    client.makeUnaryRequest(path, identity, identity, req, new grpc.Metadata(), opts(), (err, res) =>
      resolve(err ? fromErr(err) : { code: status.OK, details: '', msgs: [res!] }),
    ),
  );
}

function rawClientStream(path: string, msgs: Buffer[]): Promise<Result> {
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(path, identity, identity, new grpc.Metadata(), opts(), (err, res) =>
      resolve(err ? fromErr(err) : { code: status.OK, details: '', msgs: [res!] }),
    );
    call.on('error', () => {}); // reported through the callback
    for (const m of msgs) call.write(m);
    call.end();
  });
}

function rawServerStream(path: string, req: Buffer): Promise<Result> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path, identity, identity, req, new grpc.Metadata(), opts());
    const msgs: Buffer[] = [];
    call.on('data', (m: Buffer) => msgs.push(m));
    call.on('error', (err: grpc.ServiceError) => resolve(fromErr(err, msgs)));
    call.on('end', () => resolve({ code: status.OK, details: '', msgs }));
  });
}

type Kind = 'unary' | 'client' | 'server';
interface Method {
  name: string;
  path: string;
  kind: Kind;
  schema: Schema;
  /** Payloads that are malformed only because of this request type's schema. */
  typed: string[];
}

function methods(): Method[] {
  return PACKAGES.flatMap((pkg) => {
    const blob = blobServiceDef(pkg);
    const dir = directoryServiceDef(pkg);
    const pi = pathInfoServiceDef(pkg);
    const m = (name: string, path: string, kind: Kind, schema: Schema, typed: string[]): Method => ({ name: `${pkg} ${name}`, path, kind, schema, typed });
    return [
      m('BlobService/Stat', blob.Stat.path, 'unary', SCHEMAS.StatBlobRequest, ['0801', '1200', '1a0101']),
      m('BlobService/Read', blob.Read.path, 'server', SCHEMAS.ReadBlobRequest, ['0801', '0d00000000']),
      m('BlobService/Put', blob.Put.path, 'client', SCHEMAS.BlobChunk, ['0801', '0900000000000000']),
      m('DirectoryService/Get', dir.Get.path, 'server', SCHEMAS.GetDirectoryRequest, ['0801', '1200']),
      m('DirectoryService/Put', dir.Put.path, 'client', SCHEMAS.Directory, ['0801', '0a020801', '12022200', '1a021001', '1a021d00']),
      m('PathInfoService/Get', pi.Get.path, 'unary', SCHEMAS.GetPathInfoRequest, ['0801']),
      m('PathInfoService/Put', pi.Put.path, 'unary', SCHEMAS.PathInfo, ['0801', '1a020a00', '0a03120108', '1a021801', '1a03220180', '1a052a030a01ff']),
      m('PathInfoService/CalculateNAR', pi.CalculateNAR.path, 'unary', SCHEMAS.Node, ['0801', '12020801', '0a031a0100']),
      m('PathInfoService/List', pi.List.path, 'server', SCHEMAS.ListPathInfoRequest, []),
    ];
  });
}

function call(m: Method, msgs: Buffer[]): Promise<Result> {
  if (m.kind === 'client') return rawClientStream(m.path, msgs);
  assert.equal(msgs.length, 1);
  return m.kind === 'unary' ? rawUnary(m.path, msgs[0]) : rawServerStream(m.path, msgs[0]);
}

// ------------------------------------------------------------ machinery

/** Runs `fn` over `items`, CONCURRENCY at a time; checks health every BATCH items. */
async function runBatched<T>(items: T[], fn: (item: T, i: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += BATCH) {
    const batch = items.slice(start, start + BATCH);
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const i = next++;
        await fn(batch[i], start + i);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await assertHealthy(`after cases ${start}–${start + batch.length - 1}`);
  }
}

async function assertHealthy(when: string): Promise<void> {
  assert.equal(daemon.child.exitCode, null, `daemon exited ${when}:\n${daemon.stderr()}`);
  assert.equal(daemon.child.signalCode, null, `daemon killed ${when}:\n${daemon.stderr()}`);
  assert.equal(await checkHealth(`unix://${daemon.socket}`, false, 5000), 'SERVING', `health ${when}`);
}

function report(what: string, mismatches: string[]): void {
  assert.equal(
    mismatches.length,
    0,
    `${mismatches.length} ${what} disagree with the oracle (FUZZ_SEED=${SEED}); first ones:\n${mismatches.slice(0, 8).join('\n')}`,
  );
}

const showCode = (c: status) => status[c] ?? String(c);

// ----------------------------------------------------------------- setup

const blobPut = blobServiceDef().Put.path;
const dirPut = directoryServiceDef().Put.path;
const dirGet = directoryServiceDef().Get.path;
const piPut = pathInfoServiceDef().Put.path;
const piGet = pathInfoServiceDef().Get.path;
const piList = pathInfoServiceDef().List.path;
const statReq = (digest: Uint8Array) => new Enc().bytes(1, Buffer.from(digest)).finish();
const dirGetReq = (digest: Uint8Array, recursive = false) => new Enc().bytes(1, Buffer.from(digest), true).uint(2, recursive ? 1 : 0).finish();
const blobChunk = (data: Buffer) => new Enc().bytes(1, data).finish();

async function putBlob(data: Buffer): Promise<Buffer> {
  const r = await rawClientStream(blobPut, data.length ? [blobChunk(data)] : []);
  assert.equal(showCode(r.code), 'OK', r.details);
  const digest = Buffer.from(blake3(data));
  expectedBlobs.add(hex(digest));
  blobSizes.set(hex(digest), data.length);
  return digest;
}

async function putClosure(dirs: ODirectory[]): Promise<Buffer> {
  const msgs = dirs.map((d) => encodeDirectory(d));
  const r = await rawClientStream(dirPut, msgs);
  assert.equal(showCode(r.code), 'OK', r.details);
  for (const d of dirs) expectedDirs.set(hex(directoryDigest(d)), encodeDirectory(d));
  return directoryDigest(dirs.at(-1)!);
}

before(async () => {
  daemon = await startDaemonProcess();
  client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  const code = await daemon?.stop();
  assert.equal(code, 0, 'the daemon exits cleanly on SIGTERM after the fuzzing');
});

// ----------------------------------------------------------------- tests

describe(`wire fuzzing (seed ${SEED})`, () => {
  it('malformed protobuf to every method → INVALID_ARGUMENT, nothing stored', async (t) => {
    t.diagnostic(`seed ${SEED}`);
    const GENERIC = [
      '0a', // truncated length
      '08', // missing varint value
      '08ff', // truncated varint
      '80', // truncated key
      '0a0501', // length past the end
      '0affffffff0f00', // huge length past the end
      '1205', // length, no bytes
      '00', // field 0, varint
      '0200', // field 0, LEN
      '0b', // group start (wire type 3)
      '0c', // group end (wire type 4)
      '0e', // wire type 6
      '0f', // wire type 7
      '08ffffffffffffffffffff01', // varint longer than 10 bytes
      '088080808080808080800100', // 10-byte varint with a value over 2^64
      'f8078080808080808010', // unknown field 127, varint ≥ 2^53
      '0d0000', // truncated fixed32
      '09000000', // truncated fixed64
    ];
    const rng = Rng.forCase(SEED, 0, 0);
    const cases: { m: Method; msgs: Buffer[]; what: string }[] = [];
    for (const m of methods()) {
      const payloads: { bytes: Buffer; what: string }[] = [...GENERIC, ...m.typed].map((x) => ({ bytes: h(x), what: x }));
      for (let found = 0, tries = 0; found < 8 && tries < 10_000; tries++) {
        const g = rng.bytes(rng.range(1, 48));
        try {
          decode(g, m.schema);
        } catch (err) {
          if (!(err instanceof Malformed)) throw err;
          payloads.push({ bytes: g, what: `garbage ${g.toString('hex')}` });
          found++;
        }
      }
      for (const p of payloads) {
        assert.throws(() => decode(p.bytes, m.schema), Malformed, `${m.name}: test payload ${p.what} should be malformed`);
        cases.push({ m, msgs: [p.bytes], what: p.what });
      }
      if (m.kind === 'client') {
        // A valid first message, then a malformed one: the valid part must not be stored either.
        const first = m.schema === SCHEMAS.BlobChunk ? blobChunk(rng.bytes(100)) : encodeDirectory({ directories: [], files: [], symlinks: [{ name: Buffer.from('m'), target: Buffer.from(rng.bytes(8).map((c) => c || 1)) }] });
        cases.push({ m, msgs: [first, h('0a05')], what: 'valid then malformed' });
      }
    }
    const wrong: string[] = [];
    await runBatched(cases, async ({ m, msgs, what }) => {
      const r = await call(m, msgs);
      if (r.code !== status.INVALID_ARGUMENT) wrong.push(`${m.name} ${what}: ${showCode(r.code)} ${r.details}`);
    });
    assert.deepEqual(wrong, [], 'every malformed request → INVALID_ARGUMENT');
    t.diagnostic(`${cases.length} malformed requests over ${methods().length} methods`);
  });

  it('unknown fields and non-minimal varints are ignored; objects are stored canonically', async () => {
    const unknown = (field: number) => new Enc().tag(field, 0).varint(300).tag(field + 1, 2).varint(3).raw(Buffer.from('xyz')).tag(field + 2, 1).raw(Buffer.alloc(8, 7)).tag(field + 3, 5).raw(Buffer.alloc(4, 9)).finish();
    const loose = { unknown: () => unknown(9), pad: () => 2 };

    // BlobChunk with unknown fields: the digest is of `data` only.
    const data = Buffer.from('unknown fields are ignored');
    const put = await rawClientStream(blobPut, [Buffer.concat([blobChunk(data), unknown(5)])]);
    assert.equal(showCode(put.code), 'OK', put.details);
    assert.equal(hex(decodeBytes(put.msgs[0])), hex(blake3(data)));
    expectedBlobs.add(hex(blake3(data)));
    const stat = await rawUnary(blobServiceDef().Stat.path, Buffer.concat([statReq(blake3(data)), unknown(4)]));
    assert.equal(showCode(stat.code), 'OK', stat.details);

    // A Directory closure with unknown fields everywhere and padded varints.
    const { KEEP, COMPLICATED } = fixtureClosures();
    const res = await rawClientStream(dirPut, [encodeDirectory(KEEP, loose), encodeDirectory(COMPLICATED, loose)]);
    assert.equal(showCode(res.code), 'OK', res.details);
    assert.equal(hex(decodeBytes(res.msgs[0])), hex(directoryDigest(COMPLICATED)), 'root digest of the canonical encoding');
    expectedDirs.set(hex(directoryDigest(KEEP)), encodeDirectory(KEEP));
    expectedDirs.set(hex(directoryDigest(COMPLICATED)), encodeDirectory(COMPLICATED));
    const got = await rawServerStream(dirGet, Buffer.concat([dirGetReq(directoryDigest(COMPLICATED), true), unknown(3)]));
    assert.equal(showCode(got.code), 'OK', got.details);
    assert.deepEqual(got.msgs.map(hex), [encodeDirectory(COMPLICATED), encodeDirectory(KEEP)].map(hex));

    // A PathInfo with unknown fields in every message.
    const digest = blake3(Buffer.from('a store path'));
    const info: OPathInfo = {
      node: { type: 'symlink', name: Buffer.from(`${nix32Encode(Buffer.from(digest.subarray(0, 20)))}-unknown-fields`), target: Buffer.from('/nix/store/x') },
      references: [],
      narinfo: { narSize: 1234, narSha256: Buffer.alloc(32, 1), signatures: [{ name: Buffer.from('k-1'), data: Buffer.alloc(64, 2) }], referenceNames: [], deriver: { name: Buffer.from('foo'), digest: Buffer.alloc(20, 3) }, ca: { type: 1, digest: Buffer.alloc(20, 4) } },
    };
    const sent = encodePathInfo(info, loose);
    assert.notEqual(hex(sent), hex(encodePathInfo(info)));
    const pr = await rawUnary(piPut, sent);
    assert.equal(showCode(pr.code), 'OK', pr.details);
    assert.equal(hex(pr.msgs[0]), hex(encodePathInfo(info)), 'Put answers the canonical PathInfo');
    const key = Buffer.from(digest.subarray(0, 20));
    expectedPathInfos.set(hex(key), [encodePathInfo(info)]);
    const pg = await rawUnary(piGet, Buffer.concat([new Enc().bytes(1, key).finish(), unknown(2)]));
    assert.equal(showCode(pg.code), 'OK', pg.details);
    assert.equal(hex(pg.msgs[0]), hex(encodePathInfo(info)), 'stored canonically');
  });

  it('messages over 4 MiB → RESOURCE_EXHAUSTED on every method; the daemon keeps serving', async () => {
    const big = Buffer.concat([new Enc().tag(1, 2).varint(4 * 1024 * 1024 + 16).finish(), Buffer.alloc(4 * 1024 * 1024 + 16)]);
    for (const m of methods()) {
      const r = await call(m, [big]);
      assert.equal(showCode(r.code), 'RESOURCE_EXHAUSTED', `${m.name}: ${r.details}`);
    }
    await assertHealthy('after oversized messages');
  });

  it(`${DIR_CASES} mutated Directory Put streams agree with the oracle`, async (t) => {
    assert.ok(DIR_CASES >= 1000 || process.env.FUZZ_DIR_CASES, 'at least 1,000 cases');
    const fx = fixtureClosures();
    const cases = Array.from({ length: DIR_CASES }, (_, i) => directoryCase(Rng.forCase(SEED, 1, i), fx));
    const mismatches: string[] = [];
    const accepted: { root: Buffer; canonical: Buffer }[] = [];
    const started = performance.now();
    await runBatched(cases, async (c, i) => {
      const want = directoryPutOutcome(c.msgs, blobSizes);
      const r = await rawClientStream(dirPut, c.msgs);
      const where = () => `case ${i} [${c.label.join(', ')}] ${c.msgs.map(hex).join(' | ').slice(0, 400)}`;
      if (want.ok) {
        if (r.code !== status.OK) return void mismatches.push(`${where()}: oracle accepts, daemon ${showCode(r.code)} ${r.details}`);
        const root = decodeBytes(r.msgs[0]);
        if (!root.equals(want.root)) return void mismatches.push(`${where()}: root ${hex(root)}, oracle ${hex(want.root)}`);
        for (const s of want.stored) expectedDirs.set(hex(s.digest), s.canonical);
        accepted.push({ root: want.root, canonical: want.stored.at(-1)!.canonical });
      } else if (r.code !== status.INVALID_ARGUMENT) {
        mismatches.push(`${where()}: oracle rejects (${want.why}), daemon ${showCode(r.code)} ${r.details}`);
      }
    });
    const putMs = performance.now() - started;
    report('Directory Put streams', mismatches);

    // Everything accepted reads back, canonically.
    const readBack: string[] = [];
    await runBatched(accepted, async ({ root, canonical }) => {
      const r = await rawServerStream(dirGet, dirGetReq(root));
      if (r.code !== status.OK || r.msgs.length !== 1 || !r.msgs[0].equals(canonical)) readBack.push(`${hex(root)}: ${showCode(r.code)} ${r.msgs.map(hex).join(',')}`);
    });
    assert.deepEqual(readBack, [], 'accepted directories read back canonically');
    const rejected = cases.length - accepted.length;
    t.diagnostic(`directories: ${accepted.length} accepted, ${rejected} rejected, ${Math.round(putMs)} ms for ${cases.length} Put streams`);
    assert.ok(accepted.length >= cases.length * 0.1 && rejected >= cases.length * 0.3, `a useful mix: ${accepted.length} accepted, ${rejected} rejected`);
  });

  it(`${PATHINFO_CASES} mutated PathInfos agree with the oracle`, async (t) => {
    assert.ok(PATHINFO_CASES >= 1000 || process.env.FUZZ_PATHINFO_CASES, 'at least 1,000 cases');
    // Content the valid PathInfos point at: blobs and complete directory closures.
    const fx = fixtureClosures();
    const rnd = Rng.forCase(SEED, 2, -1).bytes(3000);
    const present: Present = {
      files: [
        { digest: await putBlob(Buffer.alloc(0)), size: 0 },
        { digest: await putBlob(Buffer.from('Hello World!')), size: 12 },
        { digest: await putBlob(rnd), size: rnd.length },
      ],
      dirs: [
        { digest: await putClosure([fx.A]), size: 0 },
        { digest: await putClosure([fx.KEEP, fx.COMPLICATED]), size: sizes(fx.COMPLICATED).head },
      ],
    };
    const presentBlobs = new Map(present.files.map((f) => [hex(f.digest), f.size]));
    const presentDirs = new Set(present.dirs.map((d) => hex(d.digest)));

    const cases = Array.from({ length: PATHINFO_CASES }, (_, i) => pathInfoCase(Rng.forCase(SEED, 2, i), present));
    const mismatches: string[] = [];
    const tally: Record<string, number> = {};
    const started = performance.now();
    await runBatched(cases, async (c, i) => {
      let want: { code: status; why: string; key?: Buffer; canonical?: Buffer };
      try {
        const p = decodePathInfo(c.raw);
        const k = pathInfoKey(p);
        if ('why' in k) want = { code: status.INVALID_ARGUMENT, why: k.why };
        else {
          const n = p.node!;
          const there = n.type === 'symlink' || (n.type === 'file' ? presentBlobs : presentDirs).has(hex(n.digest));
          // A root file's stated size must be its blob's (the daemon checks; tvix does not).
          const wrongSize = n.type === 'file' && there && presentBlobs.get(hex(n.digest)) !== n.size;
          want = !there
            ? { code: status.FAILED_PRECONDITION, why: 'content missing' }
            : wrongSize
              ? { code: status.INVALID_ARGUMENT, why: 'root file size is not its blob size' }
              : { code: status.OK, why: 'valid', key: k.key, canonical: encodePathInfo(p) };
        }
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
        want = { code: status.INVALID_ARGUMENT, why: `malformed: ${err.message}` };
      }
      tally[showCode(want.code)] = (tally[showCode(want.code)] ?? 0) + 1;
      const r = await rawUnary(piPut, c.raw);
      const where = `case ${i} [${c.label.join(', ')}] ${hex(c.raw).slice(0, 300)}`;
      if (r.code !== want.code) return void mismatches.push(`${where}: oracle ${showCode(want.code)} (${want.why}), daemon ${showCode(r.code)} ${r.details}`);
      if (want.code === status.OK) {
        if (!r.msgs[0].equals(want.canonical!)) return void mismatches.push(`${where}: Put answered ${hex(r.msgs[0])}, canonical ${hex(want.canonical!)}`);
        const k = hex(want.key!);
        expectedPathInfos.set(k, [...(expectedPathInfos.get(k) ?? []), want.canonical!]);
      }
    });
    const putMs = performance.now() - started;
    report('PathInfo Puts', mismatches);

    // Everything accepted reads back canonically (the last Put of a key wins).
    const readBack: string[] = [];
    await runBatched([...expectedPathInfos], async ([k, versions]) => {
      const r = await rawUnary(piGet, new Enc().bytes(1, Buffer.from(k, 'hex')).finish());
      if (r.code !== status.OK || !versions.some((v) => v.equals(r.msgs[0]))) readBack.push(`${k}: ${showCode(r.code)} ${r.details}`);
    });
    assert.deepEqual(readBack, [], 'accepted PathInfos read back canonically');
    const list = await rawServerStream(piList, Buffer.alloc(0));
    assert.equal(showCode(list.code), 'OK', list.details);
    assert.equal(list.msgs.length, expectedPathInfos.size, 'List holds exactly the accepted PathInfos');
    for (const m of list.msgs) {
      const k = pathInfoKey(decodePathInfo(m));
      assert.ok('key' in k, `listed PathInfo is valid: ${hex(m)}`);
      assert.ok(expectedPathInfos.get(hex(k.key))?.some((v) => v.equals(m)), `listed PathInfo was accepted as is: ${hex(m)}`);
    }
    t.diagnostic(`PathInfos: ${JSON.stringify(tally)}, ${Math.round(putMs)} ms for ${cases.length} Puts`);
    assert.ok((tally.OK ?? 0) >= cases.length * 0.1 && (tally.INVALID_ARGUMENT ?? 0) >= cases.length * 0.3 && (tally.FAILED_PRECONDITION ?? 0) > 0, `a useful mix: ${JSON.stringify(tally)}`);
  });

  it('the store on disk holds exactly the accepted objects, each valid', async () => {
    await assertHealthy('at the end');
    const files = async (kind: string) => {
      const out = new Map<string, Buffer>();
      const base = join(daemon.dataDir, kind);
      for (const shard of await readdir(base)) {
        for (const name of await readdir(join(base, shard))) out.set(name, await readFile(join(base, shard, name)));
      }
      return out;
    };

    const blobs = await storedBlobs(daemon.dataDir);
    assert.deepEqual([...blobs.keys()].sort(), [...expectedBlobs].sort(), 'blobs: exactly those uploaded successfully');
    for (const [name, data] of blobs) assert.equal(hex(blake3(data)), name);

    const dirs = await storedDirectories(daemon.dataDir);
    assert.deepEqual([...dirs.keys()].sort(), [...expectedDirs.keys()].sort(), 'directories: exactly those of accepted streams');
    for (const [name, data] of dirs) {
      assert.equal(hex(blake3(data)), name, 'named by the digest of its content');
      assert.ok(data.equals(expectedDirs.get(name)!), `${name} stored canonically`);
      const d = decodeDirectory(data);
      assert.ok(directoryValid(d), `${name} is a valid directory`);
      for (const c of d.directories) {
        const child = dirs.get(hex(c.digest));
        assert.ok(child, `${name}: child ${hex(c.digest)} is stored too`);
        const s = sizes(decodeDirectory(child));
        assert.ok(c.size === s.head || c.size === s.legacy, `${name}: child size matches`);
      }
    }

    const infos = await files('pathinfo');
    assert.deepEqual([...infos.keys()].sort(), [...expectedPathInfos.keys()].sort(), 'PathInfos: exactly the accepted keys');
    for (const [name, data] of infos) {
      const k = pathInfoKey(decodePathInfo(data));
      assert.ok('key' in k && hex(k.key) === name, `${name} is a valid PathInfo stored under its key`);
      assert.ok(expectedPathInfos.get(name)!.some((v) => v.equals(data)), `${name} stored canonically`);
    }
  });
});

/** The single bytes field 1 of a response (PutBlobResponse, PutDirectoryResponse). */
function decodeBytes(buf: Buffer): Buffer {
  const d = decode(buf, SCHEMAS.PutDirectoryResponse);
  return (d.at(-1)?.[1] as Buffer | undefined) ?? Buffer.alloc(0);
}
