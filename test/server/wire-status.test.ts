// The daemon's answers on the wire (wire.md §5–6): status codes for bad
// input, absent objects and cancelled streams, checked with raw gRPC calls
// against a real daemon process on a unix socket.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { blobServiceDef, directoryServiceDef, pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { fixtures, b, HELLO, HELLO_DIGEST, EMPTY_DIGEST, emptyDir, dirNode } from '../helpers/castore-fixtures.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import { directoryDigest } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import { openStore, sameAddr } from '../../src/addr/open.js';

const ABANDON = fileURLToPath(new URL('../helpers/abandoned-upload.js', import.meta.url));

/** Runs a client that sends part of a Put stream, then SIGKILLs it. */
async function runAbandoned(kind: 'blob' | 'dir', arg: string): Promise<void> {
  const child = spawn(process.execPath, [ABANDON, daemon.socket, kind, arg], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('sent') && resolve());
    child.once('exit', (c) => reject(new Error(`abandoned-upload exited early with ${c}`)));
  });
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const blobDef = blobServiceDef();
const dirDef = directoryServiceDef();
const piDef = pathInfoServiceDef();

let daemon: DaemonProcess;
let client: grpc.Client;

function unary<Req, Res>(m: grpc.MethodDefinition<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

async function stream<Req, Res>(m: grpc.MethodDefinition<Req, Res>, req: Req): Promise<Res[]> {
  const out: Res[] = [];
  for await (const r of client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, req)) out.push(r as Res);
  return out;
}

function upload<Req, Res>(m: grpc.MethodDefinition<Req, Res>, msgs: Req[]): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, (err, res) => (err ? reject(err) : resolve(res!)));
    for (const msg of msgs) call.write(msg);
    call.end();
  });
}

const code = (c: status, details?: RegExp) => (err: unknown) => {
  const e = err as grpc.ServiceError;
  assert.equal(status[e.code], status[c], e.details);
  if (details) assert.match(e.details, details);
  return true;
};

before(async () => {
  daemon = await startDaemonProcess();
  client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
});
after(async () => {
  client.close();
  await daemon.stop();
});

describe('wrong digest lengths on every RPC → INVALID_ARGUMENT', () => {
  for (const len of [0, 31, 33]) {
    const d = Buffer.alloc(len, 1);
    it(`${len} bytes`, async () => {
      await assert.rejects(unary(blobDef.Stat, { digest: d, sendChunks: false, sendBao: false }), code(status.INVALID_ARGUMENT, /invalid digest length/));
      await assert.rejects(stream(blobDef.Read, { digest: d }), code(status.INVALID_ARGUMENT));
      await assert.rejects(stream(dirDef.Get, { digest: d, recursive: false }), code(status.INVALID_ARGUMENT));
      await assert.rejects(stream(dirDef.Get, { digest: d, recursive: true }), code(status.INVALID_ARGUMENT));
      await assert.rejects(unary(piDef.CalculateNAR, { node: { type: 'file', name: b(''), digest: d, size: 1, executable: false } }), code(status.INVALID_ARGUMENT, /invalid root node/));
    });
  }
  it('PathInfo Get with a 32-byte output hash', async () => {
    await assert.rejects(unary(piDef.Get, { byOutputHash: Buffer.alloc(32) }), code(status.INVALID_ARGUMENT, /invalid output digest length/));
  });
});

describe('absent objects → NOT_FOUND', () => {
  const missing = blake3(b('not there'));
  it('blob Stat and Read', async () => {
    await assert.rejects(unary(blobDef.Stat, { digest: missing, sendChunks: false, sendBao: false }), code(status.NOT_FOUND, /^blob b3:.* not found$/));
    await assert.rejects(stream(blobDef.Read, { digest: missing }), code(status.NOT_FOUND));
  });
  it('directory Get; recursive Get of a missing root is an empty OK stream', async () => {
    await assert.rejects(stream(dirDef.Get, { digest: missing, recursive: false }), code(status.NOT_FOUND, /directory b3:.* not found/));
    assert.deepEqual(await stream(dirDef.Get, { digest: missing, recursive: true }), []);
  });
  it('PathInfo Get', async () => {
    await assert.rejects(unary(piDef.Get, { byOutputHash: Buffer.alloc(20) }), code(status.NOT_FOUND, /PathInfo not found/));
  });
});

describe('unset oneofs', () => {
  it('directory Get without by_what → INVALID_ARGUMENT', async () => {
    await assert.rejects(stream(dirDef.Get, { digest: undefined, recursive: true }), code(status.INVALID_ARGUMENT, /by_what/));
  });
  it('PathInfo Get without by_what → UNIMPLEMENTED', async () => {
    await assert.rejects(unary(piDef.Get, { byOutputHash: undefined }), code(status.UNIMPLEMENTED, /by_what/));
  });
  it('CalculateNAR without a node → INVALID_ARGUMENT', async () => {
    await assert.rejects(unary(piDef.CalculateNAR, { node: undefined }), code(status.INVALID_ARGUMENT, /invalid root node/));
  });
});

describe('Directory Put', () => {
  it('an empty stream → INVALID_ARGUMENT', async () => {
    await assert.rejects(upload(dirDef.Put, []), code(status.INVALID_ARGUMENT, /got no directories/));
  });
  it('a directory referencing an unknown child → INVALID_ARGUMENT, nothing stored', async () => {
    const parent: Directory = { ...emptyDir(), directories: [{ name: b('x'), digest: blake3(b('?')), size: 0 }] };
    await assert.rejects(upload(dirDef.Put, [parent]), code(status.INVALID_ARGUMENT, /unknown directory was referenced/));
    await assert.rejects(stream(dirDef.Get, { digest: directoryDigest(parent), recursive: false }), code(status.NOT_FOUND));
  });
  it('a wrong child size names both sizes', async () => {
    const { WITH_KEEP } = fixtures();
    const parent: Directory = { ...emptyDir(), directories: [{ ...dirNode('k', WITH_KEEP), size: 44 }] };
    await assert.rejects(upload(dirDef.Put, [WITH_KEEP, parent]), code(status.INVALID_ARGUMENT, /'k' has wrong size, specified 44, recorded/));
  });
  it('answers the root digest', async () => {
    const { A, B, D } = fixtures();
    const res = await upload(dirDef.Put, [A, B, D]);
    assert.equal(Buffer.from(res.rootDigest).toString('hex'), directoryDigest(D).toString('hex'));
  });
  it('a stream abandoned midway (client killed) stores nothing', async () => {
    const child: Directory = { ...emptyDir(), symlinks: [{ name: b('abandoned'), target: b('t') }] };
    await runAbandoned('dir', 'abandoned');
    await assert.rejects(stream(dirDef.Get, { digest: directoryDigest(child), recursive: false }), code(status.NOT_FOUND));
  });
});

describe('PathInfo Put', () => {
  const node: Node = { type: 'file', name: b('925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt'), digest: HELLO_DIGEST, size: 12, executable: false };
  const narinfo = { narSize: 128, narSha256: Buffer.from('03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040', 'hex'), signatures: [], referenceNames: [] };
  it('with its blob missing → FAILED_PRECONDITION naming the blob', async () => {
    await assert.rejects(unary(piDef.Put, { node, references: [], narinfo }), code(status.FAILED_PRECONDITION, /blob b3:XKeBWty0.*hello\.txt.*not in the store/));
  });
  it('mismatched references and reference_names → INVALID_ARGUMENT', async () => {
    await assert.rejects(unary(piDef.Put, { node, references: [Buffer.alloc(20)], narinfo }), code(status.INVALID_ARGUMENT, /Invalid path info/));
  });
  it('valid → stored and returned', async () => {
    await upload(blobDef.Put, [{ data: HELLO }]);
    const res = await unary(piDef.Put, { node, references: [], narinfo });
    assert.equal(Buffer.from(res.node!.name).toString(), '925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt');
    const got = await unary(piDef.Get, { byOutputHash: Buffer.from('e0c2fd23c73e73eaf3c17ec9ebb35461c9e08a48', 'hex') });
    assert.equal(got.narinfo?.narSize, 128);
    const all = await stream(piDef.List, {});
    assert.equal(all.length, 1);
  });
});

describe('CalculateNAR root names', () => {
  const node: Node = { type: 'file', name: b(''), digest: HELLO_DIGEST, size: 12, executable: false };
  it('accepts an empty name (tvix HEAD) and a valid name (copy era)', async () => {
    await upload(blobDef.Put, [{ data: HELLO }]);
    for (const name of ['', 'hello.txt']) {
      const res: { narSize: number; narSha256: Uint8Array } = await unary(piDef.CalculateNAR, { node: { ...node, name: b(name) } });
      assert.equal(res.narSize, 128);
      assert.equal(Buffer.from(res.narSha256).toString('hex'), '03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040');
    }
  });
  it('rejects an invalid name', async () => {
    for (const name of ['a/b', '.', '..', 'a\0b']) {
      await assert.rejects(unary(piDef.CalculateNAR, { node: { ...node, name: b(name) } }), code(status.INVALID_ARGUMENT, /invalid root node/), name);
    }
  });
  it('missing content → DATA_LOSS', async () => {
    await assert.rejects(unary(piDef.CalculateNAR, { node: { ...node, digest: blake3(b('gone')) } }), code(status.DATA_LOSS, /storage error: failed rendering nar/));
  });
});

describe('messages and streams', () => {
  it('a message over 4 MiB → RESOURCE_EXHAUSTED; the daemon keeps serving', async () => {
    await assert.rejects(upload(blobDef.Put, [{ data: Buffer.alloc(5 * 1024 * 1024) }]), code(status.RESOURCE_EXHAUSTED));
    await unary(blobDef.Stat, { digest: EMPTY_DIGEST, sendChunks: false, sendBao: false }).catch(() => {});
    assert.equal((await upload(blobDef.Put, [])).digest.length, 32);
  });

  it('malformed protobuf is refused; the daemon keeps serving', async () => {
    const raw = (path: string, bytes: Buffer) =>
      new Promise<void>((resolve, reject) =>
        client.makeUnaryRequest(path, (x: Buffer) => x, (x: Buffer) => x, bytes, (err) => (err ? reject(err) : resolve())),
      );
    for (const bytes of ['0a', '0aff', '0f', '12050a03']) {
      await assert.rejects(raw(piDef.Put.path, Buffer.from(bytes, 'hex')), (e: grpc.ServiceError) => e.code !== status.OK);
    }
    const r: string = await unary(blobDef.Stat, { digest: EMPTY_DIGEST, sendChunks: false, sendBao: false }).then(() => 'found', (e: grpc.ServiceError) => status[e.code]);
    assert.ok(['found', 'NOT_FOUND'].includes(r));
  });

  it('a blob Put abandoned after 100 MB (client killed) leaves no blob and no temp file', async () => {
    await runAbandoned('blob', '100');
    // The daemon discards the upload asynchronously.
    const tmp = join(daemon.dataDir, 'tmp');
    for (let i = 0; i < 100 && (await readdir(tmp)).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await readdir(tmp), [], 'temp files cleaned');
    const partial = blake3(Buffer.alloc(100 * 1024 * 1024, 0xab));
    await assert.rejects(unary(blobDef.Stat, { digest: partial, sendChunks: false, sendBao: false }), code(status.NOT_FOUND));
  });

  it('a client library talks to it through the snix.* paths too', async () => {
    const snix = blobServiceDef('snix');
    const res = await upload(snix.Put, [{ data: b('x86_64-linux') }]);
    assert.equal(Buffer.from(res.digest).toString('base64'), 'KOM3/IHEx7YfInAnlJpAElYezq0Sxn9fRz7xuClwNfA=');
    const store = openStore(sameAddr(daemon.addr));
    assert.ok(await store.blobs.stat(res.digest));
    await store.close();
  });
});
