// A blob damaged on disk (a flipped bit) is not served as a path's content:
// the NAR rendering checks every file's bytes against its BLAKE3 and ends
// the response with an error before the NAR is whole, so Nix (or any
// client) sees a failed download rather than 200 and the wrong bytes. A
// large (loose) blob and a small (packed) one, a real daemon over HTTP.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { blake3 } from '../../src/castore/digest.js';
import { directorySize } from '../../src/castore/directory.js';
import { putClosure } from '../../src/castore/directory-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { calculateNar } from '../../src/store/render-nar.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { cacheUrlOf } from './http-helpers.js';

let tmp: string;
const SMALL = Buffer.from(`a small file, packed ${process.pid}\n`);
const paths: Record<'large' | 'small', { data: string; url: string; narSize: number; blobFile?: string }> = {} as never;

/** A store holding one path whose one file is `bytes`; returns the NAR's name and size. */
async function storeWith(data: string, kind: string, bytes: Buffer): Promise<{ url: string; narSize: number; digest: Buffer }> {
  const store = openStore(sameAddr(fileAddr(data)));
  try {
    const w = store.blobs.put();
    for (let i = 0; i < bytes.length; i += 1 << 20) await w.write(bytes.subarray(i, i + (1 << 20)));
    const digest = Buffer.from(await w.close());
    const dir: Directory = { directories: [], symlinks: [], files: [{ name: Buffer.from('f'), digest, size: bytes.length, executable: false }] };
    const root = await putClosure(store.directories, [dir]);
    const hash = nix32(Buffer.from(blake3(Buffer.from(kind)).subarray(0, 20)));
    const node = { type: 'directory' as const, name: Buffer.from(`${hash}-${kind}`), digest: root, size: directorySize(dir, 'head') };
    const nar = await calculateNar(node, store);
    await store.pathInfos.put({ node, references: [], narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] } });
    return { url: `/nar/${hash}-${nix32(nar.narSha256)}.nar`, narSize: nar.narSize, digest };
  } finally {
    await store.close();
  }
}

/** Flips one byte of `needle` wherever a file under `dir` holds it. */
async function flipIn(dir: string, needle: Buffer): Promise<void> {
  for (const e of await readdir(dir, { recursive: true })) {
    const f = join(dir, e);
    if (!(await stat(f)).isFile()) continue;
    const b = await readFile(f);
    const at = b.indexOf(needle);
    if (at < 0) continue;
    b[at + (needle.length >> 1)] ^= 1;
    await writeFile(f, b);
    return;
  }
  assert.fail('the bytes were not found in the store');
}

/** The response's status, how many body bytes arrived, and whether it ended whole. */
function get(base: string, target: string): Promise<{ status: number; length: number; received: number; whole: boolean }> {
  return new Promise((resolve, reject) => {
    http
      .get(base + target, (res) => {
        let received = 0;
        res.on('data', (d: Buffer) => (received += d.length));
        const done = (whole: boolean) => resolve({ status: res.statusCode!, length: Number(res.headers['content-length']), received, whole });
        res.on('end', () => done(res.complete));
        res.on('aborted', () => done(false));
        res.on('error', () => done(false));
      })
      .on('error', reject);
  });
}

const daemons: DaemonProcess[] = [];
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'damaged-blob-'));
  for (const [kind, bytes] of [['large', randomBytes(3 << 20)], ['small', SMALL]] as const) {
    const data = join(tmp, kind);
    const made = await storeWith(data, kind, bytes);
    paths[kind] = { data, url: made.url, narSize: made.narSize };
    await flipIn(data, kind === 'large' ? bytes.subarray(1 << 20, (1 << 20) + 64) : SMALL);
  }
});

after(async () => {
  for (const d of daemons) await d.stop();
  await rm(tmp, { recursive: true, force: true });
});

for (const kind of ['large', 'small'] as const) {
  it(`a ${kind} blob with a flipped bit: the NAR response ends before it is whole`, async () => {
    const d = await startDaemonProcess({ args: ['--data', paths[kind].data, '--http', '127.0.0.1:0'] });
    daemons.push(d);
    const r = await get(await cacheUrlOf(d), paths[kind].url);
    assert.ok(r.status !== 200 || !r.whole, `served whole: ${JSON.stringify(r)}`);
    assert.ok(r.received < paths[kind].narSize, `${r.received} of ${paths[kind].narSize} bytes arrived`);
    for (let i = 0; i < 100 && !/reads back as/.test(d.stderr()); i++) await new Promise((res) => setTimeout(res, 50));
    assert.match(d.stderr(), /blob b3:\S+ reads back as b3:\S+: the store is damaged/);
  });
}
