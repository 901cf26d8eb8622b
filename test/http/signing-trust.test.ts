// Issue 18, finding 1: a signing daemon cannot be made to sign a client's
// claim. It refuses to start while anyone who reaches it may write, and it
// signs a narinfo only after rendering the path's NAR from its own content
// and finding the claimed NarHash/NarSize; the check is recorded with the
// PathInfo, so it survives a kill -9.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer, symlinkPathInfo } from '../helpers/grpc-writes.js';
import { cacheUrlOf, request } from './http-helpers.js';
import { runCli } from '../copy/run-cli.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { calculateNar, type Castore } from '../../src/store/render-nar.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { fingerprint, formatSecretKey, generateSecretKey, publicKeyOf, verify } from '../../src/nix/signature.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { blake3 } from '../../src/castore/digest.js';

const KEY = generateSecretKey('trust-test-1');
const PUBLIC = publicKeyOf(KEY);

let tmp: string;
let keyFile: string;
let dataDir: string;
let daemon: DaemonProcess;
let w: Writer;
let url: string;

async function startSigning(): Promise<void> {
  daemon = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--http', '127.0.0.1:0', '--sign-key-file', keyFile] });
  w = new Writer(daemon.socket);
  url = await cacheUrlOf(daemon);
}

/** A symlink path whose PathInfo states the true NAR hash and size. */
async function honestSymlink(label: string): Promise<{ info: PathInfo; storeDigest: Buffer }> {
  const p = symlinkPathInfo(label);
  const nar = await calculateNar(p.info.node!, {} as Castore);
  p.info.narinfo = { ...p.info.narinfo!, narSha256: nar.narSha256, narSize: nar.narSize };
  return p;
}

/** Waits for a line in the daemon's stderr (it may arrive after the HTTP answer). */
async function logged(re: RegExp): Promise<void> {
  for (let i = 0; i < 400 && !re.test(daemon.stderr()); i++) await new Promise((r) => setTimeout(r, 25));
  assert.match(daemon.stderr(), re);
}

function signatureOk(text: string): boolean {
  const ni = parseNarInfo(text);
  const sig = ni.signatures.find((s) => s.name === KEY.name);
  return !!sig && verify(fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references), sig, PUBLIC);
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-trust-'));
  keyFile = join(tmp, 'cache.key');
  await writeFile(keyFile, formatSecretKey(KEY), { mode: 0o600 });
  dataDir = join(tmp, 'data');
  await startSigning();
});

after(async () => {
  w?.close();
  await daemon?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('a signing daemon needs authenticated writes', () => {
  it('refuses to start on TCP without a token, or on world-writable sockets, and says what to add (exit 2)', async () => {
    for (const args of [
      ['--listen', '127.0.0.1:0'],
      ['--listen', `unix:${join(tmp, 'open.sock')}`, '--socket-mode', '666'],
    ]) {
      const r = await runCli(['daemon', '--store', 'memory://', ...args, '--http', '127.0.0.1:0', '--sign-key-file', keyFile], { killAfter: (e) => /serving/.test(e) });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--auth-token-file FILE/);
      assert.match(r.stderr, /--read-only/);
      assert.match(r.stderr, /--dangerously-sign-unauthenticated-writes/);
    }
  });

  it('starts with a token, read-only, or the loud opt-out', async () => {
    const token = join(tmp, 'token');
    await writeFile(token, 'secret-token-1\n', { mode: 0o600 });
    for (const extra of [['--auth-token-file', token], ['--read-only'], ['--dangerously-sign-unauthenticated-writes']]) {
      const d = await startDaemonProcess({ args: ['--store', 'memory://', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--sign-key-file', keyFile, ...extra] });
      try {
        await cacheUrlOf(d);
        if (extra[0] === '--dangerously-sign-unauthenticated-writes') assert.match(d.stderr(), /WARNING: .*anyone who can connect can publish paths signed by trust-test-1/);
      } finally {
        await d.stop();
      }
    }
  });
});

describe('only checked claims are signed', () => {
  it('a PathInfo whose NarHash its content does not render is not served, let alone signed', async () => {
    const { info, storeDigest } = await honestSymlink('poisoned');
    info.narinfo!.narSha256 = Buffer.alloc(32, 7); // the right size, another NAR's hash
    assert.equal((await w.putPathInfo(info)).name, 'OK');
    const r = await request(url, `/${nix32(storeDigest)}.narinfo`);
    assert.equal(r.status, 404, r.body.toString());
    assert.match(r.body.toString(), /does not render the NAR its PathInfo claims/);
    await logged(/not signing \/nix\/store\/\S+-poisoned: its content renders NAR hash sha256:\w{52}, the PathInfo says sha256:\w{52}/);
  });

  it('a true claim is signed, and the signature is recorded with the PathInfo', async () => {
    const { info, storeDigest } = await honestSymlink('honest');
    assert.equal((await w.putPathInfo(info)).name, 'OK');
    const r = await request(url, `/${nix32(storeDigest)}.narinfo`);
    assert.equal(r.status, 200, r.body.toString());
    assert.ok(signatureOk(r.body.toString()), r.body.toString());
    const stored = (await w.getPathInfo(storeDigest)).res!;
    assert.deepEqual(stored.narinfo!.signatures.map((s) => s.name), [KEY.name]);
  });

  it('after kill -9 and a restart, the recorded check still holds', async () => {
    const { storeDigest } = await honestSymlink('honest');
    w.close();
    daemon.child.kill('SIGKILL');
    await new Promise((r) => daemon.child.once('exit', r));
    await startSigning();
    const r = await request(url, `/${nix32(storeDigest)}.narinfo`);
    assert.equal(r.status, 200, r.body.toString());
    assert.ok(signatureOk(r.body.toString()));
  });

  it('a Directory DAG bomb claiming a small NAR ends the check at the claimed size', async () => {
    // 48 levels, each with two entries pointing at the level below: a NAR of ~2^48 entries.
    const dirs: Directory[] = [{ directories: [], files: [], symlinks: [{ name: Buffer.from('l'), target: Buffer.from('t') }] }];
    for (let i = 1; i < 48; i++) {
      const below = dirs[i - 1];
      const child = { digest: directoryDigest(below), size: directorySize(below) };
      dirs.push({ directories: [{ name: Buffer.from('a'), ...child }, { name: Buffer.from('b'), ...child }], files: [], symlinks: [] });
    }
    assert.equal((await w.putDirectories(dirs)).name, 'OK');
    const root = dirs[dirs.length - 1];
    const storeDigest = Buffer.from(blake3(Buffer.from('bomb')).subarray(0, 20));
    const info: PathInfo = {
      node: { type: 'directory', name: Buffer.from(`${nix32(storeDigest)}-bomb`), digest: directoryDigest(root), size: directorySize(root) },
      references: [],
      narinfo: { narSize: 4096, narSha256: Buffer.alloc(32, 1), signatures: [], referenceNames: [] },
    };
    assert.equal((await w.putPathInfo(info)).name, 'OK');
    const r = await request(url, `/${nix32(storeDigest)}.narinfo`);
    assert.equal(r.status, 404, r.body.toString());
    await logged(/not signing \/nix\/store\/\S+-bomb: its content renders a NAR longer than the 4096 bytes/);
  });
});
