// Content-addressed derivations (ca-derivations) through the daemon's
// binary cache, with real Nix 2.8: `nix copy --to` uploads each output's
// realisation (realisations/sha256:…!out.doi), and another store that
// builds the same derivations substitutes them — Nix asks for the
// realisation first and builds what it cannot resolve (in a chroot store,
// building fails: there is no /bin/sh). Also: a realisation is served only
// while its output is in the store; what is malformed is refused; with
// --trusted-upload-keys only realisations signed by such a key are kept
// (Nix signs them when it builds with secret-key-files); a read-only daemon
// on the same data serves them and refuses uploads.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshNixEnv, keyPair, netrcFile } from '../helpers/cache-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { cacheUrlOf, request } from './http-helpers.js';
import { runCli } from '../copy/run-cli.js';

const SALT = `real-${process.pid}-${Date.now()}`;
const TOKEN = 'realisations-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

let tmp: string;
let skFile: string;
let tokenFile: string;
let netrc: string;
let daemonKey: { secret: string; public: string };
const daemons: DaemonProcess[] = [];

/** `ca` and `ca2` are content-addressed; `dep` too, and refers to both (its realisation lists theirs). */
const caNix = (salt: string) => `{ }: rec {
  ca = builtins.derivation { name = "ca-${salt}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo ${salt} > $out" ]; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  ca2 = builtins.derivation { name = "ca2-${salt}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo 2 ${salt} > $out" ]; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  dep = builtins.derivation { name = "dep-${salt}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo \${ca} > $out; echo \${ca2} >> $out" ]; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
}`;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'realisations-'));
  daemonKey = await keyPair('realisations-daemon-1');
  skFile = join(tmp, 'daemon.key');
  await writeFile(skFile, daemonKey.secret, { mode: 0o600 });
  tokenFile = join(tmp, 'token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  netrc = await netrcFile(join(tmp, 'netrc'), TOKEN);
});

after(async () => {
  for (const d of daemons) await d.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function startCache(data: string, extra: string[] = []): Promise<{ d: DaemonProcess; url: string }> {
  const d = await startDaemonProcess({ args: ['--data', data, '--http', '127.0.0.1:0', '--sign-key-file', skFile, '--auth-token-file', tokenFile, ...extra] });
  daemons.push(d);
  return { d, url: await cacheUrlOf(d) };
}

/** A Nix that builds CA derivations, its own narinfo cache, optionally signing what it builds. */
function nixWith(name: string, extra: string[] = []): NodeJS.ProcessEnv {
  return freshNixEnv(join(tmp, `nix-cache-${name}`), [`netrc-file = ${netrc}`, 'experimental-features = nix-command flakes ca-derivations', ...extra]);
}

async function writeNix(salt: string): Promise<string> {
  const file = join(tmp, `${salt}.nix`);
  await writeFile(file, caNix(salt));
  return file;
}

async function build(file: string, attr: string, env: NodeJS.ProcessEnv): Promise<string> {
  return (await runNix('nix-build', [file, '-A', attr, '--no-out-link'], { env })).stdout.toString().trim();
}

/** The head of the answer to a PUT that declares `length` bytes and sends none. */
function declaring(url: string, target: string, length: number): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname);
    let got = '';
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n\r\n')) s.destroy();
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.write(`PUT ${target} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${length}\r\n\r\n`);
  });
}

const puts = (d: DaemonProcess) => d.stderr().split('\n').filter((l) => /http: PUT \/realisations\//.test(l));

describe('realisations through the binary cache, with real Nix', () => {
  let cache: { d: DaemonProcess; url: string };
  let file: string;
  let dep: string;
  let ca: string;
  let ca2: string;
  const data = () => join(tmp, 'data-main');

  before(async () => {
    cache = await startCache(data());
    file = await writeNix(`${SALT}-a`);
    const env = nixWith('push');
    dep = await build(file, 'dep', env);
    [ca, ca2] = (await readFile(dep, 'utf8')).trim().split('\n');
    await runNix('nix', ['copy', '--to', cache.url, '-f', file, 'dep'], { env });
  });

  it('nix copy --to uploads the three outputs\' realisations; each is served as uploaded', async () => {
    const lines = puts(cache.d);
    assert.equal(lines.filter((l) => /PUT \/realisations\/sha256:[0-9a-f]{64}!out\.doi 200/.test(l)).length, 3, lines.join('\n'));
    for (const l of lines) {
      const target = /PUT (\S+) /.exec(l)![1];
      const r = await request(cache.url, target, 'GET', auth);
      assert.equal(r.status, 200, target);
      assert.equal(r.headers['content-type'], 'application/json');
      const j = JSON.parse(r.body.toString()) as { id: string; outPath: string };
      assert.equal(`/realisations/${j.id}.doi`, target);
      assert.ok([ca, ca2, dep].includes(`/nix/store/${j.outPath}`), j.outPath);
    }
  });

  it('another store building the same derivations substitutes all three (signatures required, the daemon\'s key trusted)', async () => {
    const root = join(tmp, 'root-substitute');
    const env = nixWith('pull', [`substituters = ${cache.url}`, `trusted-public-keys = ${daemonKey.public}`, 'require-sigs = true']);
    const out = (await runNix('nix-build', ['--store', root, file, '-A', 'dep', '--no-out-link'], { env })).stdout.toString().trim();
    assert.equal(out, dep);
    for (const p of [ca, ca2, dep]) await runNix('nix-store', ['--store', root, '--verify-path', p], { env });
    assert.equal(await readFile(join(root, dep), 'utf8'), `${ca}\n${ca2}\n`);
  });

  it("later Nix's form (realisations/<drv>/<output>.doi, the whole store path as outPath) is kept and served too", async () => {
    const target = `/realisations/${'0'.repeat(32)}-dep-later.drv/out.doi`;
    const body = Buffer.from(JSON.stringify({ outPath: dep, signatures: [] }));
    const put = await request(cache.url, target, 'PUT', auth, body);
    assert.equal(put.status, 200, put.body.toString());
    const got = await request(cache.url, target, 'GET', auth);
    assert.equal(got.status, 200, got.body.toString());
    assert.deepEqual(got.body, body);
  });

  it('fsck --nar finds the store clean, with the realisations kept beside it', async () => {
    const r = await runCli(['fsck', '--data', data(), '--nar']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('a read-only daemon on the same data serves them and refuses uploads (403)', async () => {
    const target = /PUT (\S+) /.exec(puts(cache.d)[0])![1];
    const ro = await startDaemonProcess({ args: ['--data', data(), '--http', '127.0.0.1:0', '--read-only'] });
    daemons.push(ro);
    const url = await cacheUrlOf(ro);
    const got = await request(url, target, 'GET');
    assert.equal(got.status, 200);
    assert.equal((await request(url, target, 'PUT', {}, got.body)).status, 403);
  });
});

describe('what the cache keeps and serves', () => {
  let cache: { d: DaemonProcess; url: string };
  const id = `sha256:${'ab'.repeat(32)}!out`;
  const doi = (j: object) => Buffer.from(JSON.stringify(j));
  const absent = '0c6kzph7l0dcbfmjap64f0czdafn3b7x-not-uploaded';

  before(async () => {
    cache = await startCache(join(tmp, 'data-checks'));
  });

  it('one whose output is not in the store is accepted and not served (404 saying why)', async () => {
    const put = await request(cache.url, `/realisations/${id}.doi`, 'PUT', auth, doi({ dependentRealisations: {}, id, outPath: absent, signatures: [] }));
    assert.equal(put.status, 200, put.body.toString());
    const got = await request(cache.url, `/realisations/${id}.doi`, 'GET', auth);
    assert.equal(got.status, 404);
    assert.match(got.body.toString(), /its output 0c6kzph7l0dcbfmjap64f0czdafn3b7x-not-uploaded is not in the store/);
    assert.equal((await request(cache.url, `/realisations/sha256:${'cd'.repeat(32)}!out.doi`, 'GET', auth)).status, 404);
  });

  it('malformed ones are refused: 400 naming what is wrong, 413 past 1 MiB; nothing kept', async () => {
    const other = `sha256:${'ef'.repeat(32)}!out`;
    const cases: [string, Buffer | string, number, RegExp][] = [
      [`/realisations/${other}.doi`, 'not json', 400, /not JSON/],
      [`/realisations/${other}.doi`, '[1]', 400, /not a JSON object/],
      [`/realisations/${other}.doi`, doi({ id: other, outPath: 'nope' }), 400, /outPath: invalid store path basename/],
      [`/realisations/${other}.doi`, doi({ id, outPath: absent }), 400, /its id .* is not the name it was uploaded as/],
      [`/realisations/${other}.doi`, doi({ id: other, outPath: absent, signatures: 'x' }), 400, /signatures is not a list/],
      ['/realisations/sha256:12!out.doi', doi({ outPath: absent }), 400, /a realisation is uploaded as/],
      ['/realisations/../../etc.doi', doi({ outPath: absent }), 400, /a realisation is uploaded as/],
    ];
    for (const [target, body, status, message] of cases) {
      const r = await request(cache.url, target, 'PUT', auth, typeof body === 'string' ? Buffer.from(body) : body);
      assert.equal(r.status, status, `${target}: ${r.body.toString()}`);
      assert.match(r.body.toString(), message);
    }
    // Too large by its declared length: answered before any body is read
    // (sent whole, the body raced the answer and the close: EPIPE).
    const head = await declaring(cache.url, `/realisations/${other}.doi`, (1 << 20) + 1);
    assert.match(head, /^HTTP\/1\.1 413 /);
    const kept = await request(cache.url, `/realisations/${other}.doi`, 'GET', auth);
    assert.equal(kept.status, 404);
    assert.match(kept.body.toString(), /no realisation/);
    const put = await request(cache.url, `/realisations/${other}.doi`, 'PUT', auth, doi({ id: other, outPath: absent }));
    assert.equal(put.status, 200);
  });

  it('an upload needs the token (401), as every upload does', async () => {
    assert.equal((await request(cache.url, `/realisations/${id}.doi`, 'PUT', {}, doi({ id, outPath: absent }))).status, 401);
  });
});

describe('--trusted-upload-keys: only realisations signed by such a key are kept', () => {
  it('Nix signing its builds (secret-key-files) pushes; unsigned ones are refused (403) and nix copy fails', async () => {
    const pusherKey = await keyPair('realisations-pusher-1');
    const pusherSk = join(tmp, 'pusher.key');
    await writeFile(pusherSk, pusherKey.secret, { mode: 0o600 });
    const cache = await startCache(join(tmp, 'data-trusted'), ['--trusted-upload-keys', pusherKey.public]);

    const signed = await writeNix(`${SALT}-signed`);
    const signing = nixWith('push-signed', [`secret-key-files = ${pusherSk}`]);
    await build(signed, 'dep', signing);
    await runNix('nix', ['copy', '--to', cache.url, '-f', signed, 'dep'], { env: signing });
    // dep's realisation lists two others: its signature covers them in nlohmann::json's (sorted) order.
    assert.equal(puts(cache.d).filter((l) => / 200 /.test(l)).length, 3, cache.d.stderr());

    // Paths signed afterwards carry signatures; their realisations do not.
    const unsigned = await writeNix(`${SALT}-unsigned`);
    const plain = nixWith('push-unsigned');
    const out = await build(unsigned, 'ca', plain);
    await runNix('nix', ['store', 'sign', '--key-file', pusherSk, out], { env: plain });
    await assert.rejects(runNix('nix', ['copy', '--to', cache.url, '-f', unsigned, 'ca'], { env: plain }), /403/);
    assert.ok(puts(cache.d).some((l) => / 403 /.test(l)), cache.d.stderr());

    // Later Nix's form has a fingerprint the daemon does not know: refused, saying so.
    const later = await request(cache.url, `/realisations/${'0'.repeat(32)}-x.drv/out.doi`, 'PUT', auth, Buffer.from(JSON.stringify({ outPath: out, signatures: [] })));
    assert.equal(later.status, 403);
    assert.match(later.body.toString(), /only Nix 2\.8's form .* can be checked against --trusted-upload-keys/);
  });
});
