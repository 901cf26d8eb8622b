// `nix-castore import` of caches Nix itself wrote (`nix copy --to file://…`
// with each compression) and of the daemon's own --http cache: every path
// verified and its NAR rendered back byte for byte; a second run imports
// nothing; an import killed midway resumes; a corrupted NAR fails its path
// and the paths that refer to it, and only those.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFixture, deleteCacheFixture, type CacheFixture } from '../helpers/cache-fixtures.js';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf } from '../http/http-helpers.js';

const SALT = `import-${process.pid}`;

let fx: CacheFixture;
let tmp: string;
const dumps = new Map<string, string>();
const daemons: DaemonProcess[] = [];

before(async () => {
  fx = await cacheFixture(SALT);
  tmp = await mkdtemp(join(tmpdir(), 'cache-import-'));
  for (const p of fx.closure) dumps.set(p, createHash('sha256').update((await runNix('nix-store', ['--dump', p])).stdout).digest('hex'));
});

after(async () => {
  for (const d of daemons) await d.stop();
  await deleteCacheFixture(fx);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function nixCache(name: string, query: string): Promise<string> {
  const dir = join(tmp, `nix-cache-${name}`);
  await runNix('nix', ['copy', '--to', `file://${dir}${query}`, fx.top]);
  return dir;
}

/** Every path of the closure is in `store` and renders to nix-store --dump's bytes. */
async function assertHasClosure(store: string, paths = fx.closure): Promise<void> {
  for (const p of paths) {
    const r = await runNix('bash', ['-c', 'set -o pipefail; "$1" "$2" nar --store "$3" "$4" | sha256sum', 'bash', process.execPath, CLI, store, p]);
    assert.equal(r.stdout.toString().split(' ')[0], dumps.get(p), p);
  }
}

const summary = (stderr: string) => /(\d+) imported, (\d+) already there, (\d+) failed/.exec(stderr)!.slice(1).map(Number);

describe('import of caches written by nix copy --to file://', () => {
  for (const [name, query] of [
    ['xz', ''],
    ['zstd', '?compression=zstd'],
    ['none', '?compression=none'],
    ['bzip2', '?compression=bzip2'],
  ] as const) {
    it(`${name}: every path imported and verified, a second run imports nothing`, async () => {
      const src = await nixCache(name, query);
      const store = `file://${join(tmp, `store-${name}`)}`;
      const r = await runCli(['import', '--store', store, `file://${src}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(summary(r.stderr), [4, 0, 0]);
      assert.match(r.stderr, /read \d+ NAR bytes \(\d+ downloaded\), stored \d+ new bytes/);
      await assertHasClosure(store);
      const again = await runCli(['import', '--store', store, src]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(summary(again.stderr), [0, 4, 0]);
      const fsck = await runCli(['fsck', '--data', join(tmp, `store-${name}`), '--nar']);
      assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    });
  }

  it('with store paths: only their closures', async () => {
    const src = await nixCache('xz', '');
    const store = `file://${join(tmp, 'store-some')}`;
    const r = await runCli(['import', '--store', store, `file://${src}`, fx.link]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(summary(r.stderr), [2, 0, 0]);
    await assertHasClosure(store, [fx.file, fx.link]);
    const top = await runCli(['path-info', '--store', store, fx.top]);
    assert.equal(top.code, 1);
  });

  it('an import killed midway is resumed by running it again', async () => {
    const src = await nixCache('zstd', '?compression=zstd');
    const store = `file://${join(tmp, 'store-resumed')}`;
    const killed = await runCli(['import', '--jobs', '1', '--store', store, src], { killAfter: (e) => /\[1\/4\]/.test(e) });
    assert.equal(killed.signal, 'SIGKILL');
    const r = await runCli(['import', '--store', store, src]);
    assert.equal(r.code, 0, r.stderr);
    const [imported, present] = summary(r.stderr);
    assert.ok(present >= 1, r.stderr);
    assert.equal(imported + present, 4);
    await assertHasClosure(store);
  });

  it('a corrupted NAR fails its path and those referring to it; the rest is imported', async () => {
    const src = await nixCache('none-corrupt', '?compression=none');
    const leafInfo = await readFile(join(src, `${fx.leaf.slice(11, 43)}.narinfo`), 'utf8');
    const url = /^URL: (.*)$/m.exec(leafInfo)![1];
    const nar = await readFile(join(src, url));
    nar[nar.length >> 1] ^= 1;
    await writeFile(join(src, url), nar);
    const store = `file://${join(tmp, 'store-corrupt')}`;
    const r = await runCli(['import', '--store', store, src]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(summary(r.stderr), [2, 0, 2]);
    assert.match(r.stderr, new RegExp(`failed: ${fx.leaf}: .*(hash|FileHash|NarHash|padding|malformed)`));
    assert.match(r.stderr, new RegExp(`failed: ${fx.top}: its reference ${fx.leaf} was not imported`));
    await assertHasClosure(store, [fx.file, fx.link]);
  });

  it('bad input: exit 2 and what to fix', async () => {
    const r = await runCli(['import', '--store', 'memory://', 'ftp://x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expected file:\/\/\/abs\/dir/);
    const h = await runCli(['import', '--store', 'memory://', 'http://127.0.0.1:1']);
    assert.equal(h.code, 2);
    assert.match(h.stderr, /cannot be listed: name the store paths/);
    const help = await runCli(['import', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: nix-castore import/);
  });
});

describe("import from the daemon's own --http cache", () => {
  it('into a second store: the same closure, byte for byte', async () => {
    const src = await nixCache('xz', '');
    const first = join(tmp, 'store-first');
    const r1 = await runCli(['import', '--store', `file://${first}`, src]);
    assert.equal(r1.code, 0, r1.stderr);
    const d = await startDaemonProcess({ args: ['--data', first, '--http', '127.0.0.1:0'] });
    daemons.push(d);
    const url = await cacheUrlOf(d);
    const second = `file://${join(tmp, 'store-second')}`;
    const r = await runCli(['import', '--store', second, url, fx.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(summary(r.stderr), [4, 0, 0]);
    await assertHasClosure(second);
    assert.ok((await readdir(join(tmp, 'store-second'))).includes('pathinfo'));
  });
});
