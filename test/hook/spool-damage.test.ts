// Damaged spool entries (a torn write, a bad disk block). Nothing a drain
// does may lose what they still say: a file cut short that still names its
// derivation is uploaded like any other, and one with nothing to recover is
// kept, bytes and all, instead of being rewritten as an entry that names
// nothing (and could then never be uploaded).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix } from '../copy/verify-store.js';
import { runCli } from '../copy/run-cli.js';

const CHAIN = fileURLToPath(new URL('../../../test/fixtures/hook-chain.nix', import.meta.url));

let tmp: string;
let d: DaemonProcess;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-spool-damage-'));
  d = await startDaemonProcess();
});
after(async () => {
  await d.stop();
  await rm(tmp, { recursive: true, force: true });
});

const entries = async (spool: string) => (await readdir(spool)).filter((n) => n.endsWith('.json'));

describe('damaged spool entries', () => {
  it('an entry cut short after its derivation is uploaded and removed', async () => {
    const salt = `${Date.now()}-${Math.random()}`;
    const out = (await runNix('nix-build', [CHAIN, '--no-out-link', '--argstr', 'salt', salt, '--arg', 'length', '1', '-A', 'top'])).stdout.toString().trim();
    const drv = (await runNix('nix-store', ['-q', '--deriver', out])).stdout.toString().trim();
    const spool = join(tmp, 'torn');
    await mkdir(spool);
    // What bin/nix-castore-hook writes, cut off in the middle.
    const whole = `{"drvPath":"${drv}","outPaths":[],"queuedAt":"2026-01-01T00:00:00.000Z","attempts":0}\n`;
    await writeFile(join(spool, `${String(Date.now()).padStart(15, '0')}-1-0000abcd.json`), whole.slice(0, whole.indexOf('"attempts"') + 4));
    const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await entries(spool), []);
    const store = openStore(sameAddr(d.addr));
    try {
      await assertStoreMatchesNix(store, [out]);
    } finally {
      await store.close();
    }
  });

  it('an entry with nothing to recover is kept with its bytes, through retries', async () => {
    const spool = join(tmp, 'garbage');
    await mkdir(spool);
    const bytes = Buffer.from([0, 1, 2, 0xff, 0x7b, 0x22, 0x64, 0x72, 0x76]); // ends as `{"drv`
    const name = `${String(Date.now()).padStart(15, '0')}-1-0000beef.json`;
    await writeFile(join(spool, name), bytes);
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
      assert.equal(r.code, 1, r.stderr);
      if (i === 0) assert.match(r.stderr, /unreadable spool entry/);
    }
    assert.deepEqual(await entries(spool), [name]);
    const kept = JSON.parse(await readFile(join(spool, name), 'utf8')) as { unreadable?: string; attempts: number };
    assert.ok(kept.attempts >= 1, 'rescheduled (the second drain retries it or finds it not yet due)');
    assert.deepEqual(Buffer.from(kept.unreadable ?? '', 'base64'), bytes, 'the original bytes are kept');
  });
});
