// Issue 18, finding 5 (read-ahead part): directory entries that state a
// tiny size but point at a large blob must not make the NAR renderer's
// read-ahead load the whole blob for each. Real daemon; its peak RSS
// (VmHWM) is compared before and after a CalculateNAR on such a directory.
// Directory Put refuses such a directory now, so it is written into the
// data directory before the daemon starts (a store filled before the
// check, or by other means).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { putClosure } from '../../src/castore/directory-service.js';
import * as grpc from '@grpc/grpc-js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';
import { pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';

const BLOB_MIB = 48;
let daemon: DaemonProcess;
let dataDir: string;
const data = randomBytes(BLOB_MIB << 20);
const dir: Directory = {
  directories: [],
  files: Array.from({ length: 16 }, (_, i) => ({ name: Buffer.from(`f${String(i).padStart(2, '0')}`), digest: blake3(data), size: 1, executable: false })),
  symlinks: [],
};

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'castore-read-ahead-'));
  const store = openStore(sameAddr(fileAddr(dataDir)));
  try {
    const w = store.blobs.put();
    for (let off = 0; off < data.length; off += 1 << 20) await w.write(data.subarray(off, off + (1 << 20)));
    await w.close();
    await putClosure(store.directories, [dir]);
  } finally {
    await store.close();
  }
  daemon = await startDaemonProcess({ dataDir });
});

after(async () => {
  await daemon?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

function vmHwmMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

function call<T>(client: grpc.Client, run: (cb: (err: grpc.ServiceError | null) => void) => T): Promise<string> {
  return new Promise((resolve) => run((err) => resolve(err ? grpc.status[err.code] : 'OK')));
}

it('16 entries stating size 1 for a 48 MiB blob: CalculateNAR fails without loading the blob 16 times', async () => {
  const client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
  const w = new Writer(daemon.socket);
  assert.equal((await w.putDirectories([dir])).name, 'INVALID_ARGUMENT', 'Directory Put refuses the stated sizes');
  w.close();
  const pid = daemon.child.pid!;
  const before = vmHwmMiB(pid);
  const m = pathInfoServiceDef().CalculateNAR;
  const node = { type: 'directory' as const, name: Buffer.alloc(0), digest: directoryDigest(dir), size: directorySize(dir) };
  const answer = await call(client, (cb) => client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { node }, cb));
  client.close();
  assert.equal(answer, 'DATA_LOSS');
  const grew = vmHwmMiB(pid) - before;
  assert.ok(grew < 4 * BLOB_MIB, `the daemon's peak RSS grew by ${grew.toFixed(0)} MiB (the blob is ${BLOB_MIB} MiB)`);
});
