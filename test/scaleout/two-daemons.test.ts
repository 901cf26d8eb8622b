// Stateless daemons: two daemons on one bucket + database serve the same
// store, and one can be killed at any point without loss. Real Ceph RGW and
// PostgreSQL (started by the test command), real daemons, real Nix paths.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { runCli } from '../copy/run-cli.js';

describe('two daemons on one S3 bucket + PostgreSQL database', () => {
  let fx: CopyFixture;
  before(async () => {
    fx = await copyFixture('scaleout');
  });

  it('a copy through daemon A reads back through daemon B, NARs equal to nix-store --dump', async () => {
    const s = await freshScaleoutAddr('ab');
    const a = await startDaemonProcess({ args: ['--store', s.addr] });
    const b = await startDaemonProcess({ args: ['--store', s.addr] });
    const viaB = openStore(sameAddr(b.addr));
    try {
      const r = await runCli(['copy', '--store', a.addr, '--attrs', fx.attrsJsonFile]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await publishedPaths(viaB), fx.closure);
      await assertStoreMatchesNix(viaB, fx.closure);
      // And B sees everything as present: a copy through B sends nothing.
      const again = await runCli(['copy', '--store', b.addr, '--attrs', fx.attrsJsonFile, '--json']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(JSON.parse(again.stdout).skipped.length, fx.closure.length);
    } finally {
      await viaB.close();
      await a.stop();
      await b.stop();
      await s.drop();
    }
  });

  it('the same closure copied through A and B at the same time: both succeed, nothing indexed twice', async () => {
    const s = await freshScaleoutAddr('race');
    const a = await startDaemonProcess({ args: ['--store', s.addr] });
    const b = await startDaemonProcess({ args: ['--store', s.addr] });
    const viaB = openStore(sameAddr(b.addr));
    try {
      const [ra, rb] = await Promise.all([
        runCli(['copy', '--store', a.addr, '--attrs', fx.attrsJsonFile]),
        runCli(['copy', '--store', b.addr, '--attrs', fx.attrsJsonFile]),
      ]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(rb.code, 0, rb.stderr);
      await assertStoreMatchesNix(viaB, fx.closure);
      const fsck = await runCli(['fsck', '--store', s.addr]);
      assert.equal(fsck.code, 0, `fsck after the race:\n${fsck.stdout}\n${fsck.stderr}`);
    } finally {
      await viaB.close();
      await a.stop();
      await b.stop();
      await s.drop();
    }
  });

  // Early: a few hundred ms after the copy starts, blobs (the 100 MiB one
  // among them) are on their way; late: a path is already published.
  for (const when of ['400 ms into the copy', 'the first path is published'] as const) {
    it(`daemon A killed when ${when}: the copy re-run through B completes and fsck is clean`, async () => {
      const s = await freshScaleoutAddr('kill');
      const a = await startDaemonProcess({ args: ['--store', s.addr] });
      const b = await startDaemonProcess({ args: ['--store', s.addr] });
      const viaB = openStore(sameAddr(b.addr));
      try {
        let killed = false;
        let timer: NodeJS.Timeout | undefined;
        const kill = () => {
          if (killed) return;
          killed = true;
          a.child.kill('SIGKILL');
        };
        const first = await runCli(['copy', '--store', a.addr, '--attrs', fx.attrsJsonFile, '--jobs', '1'], {
          killAfter: (stderr) => {
            if (when === 'the first path is published' && /uploaded /.test(stderr)) kill();
            else if (when === '400 ms into the copy' && /to upload/.test(stderr) && !timer) timer = setTimeout(kill, 400);
            return false;
          },
        });
        assert.ok(killed, `daemon A was killed during the copy:\n${first.stderr}`);
        assert.notEqual(first.code, 0, 'the copy through the killed daemon fails');
        const partial = await publishedPaths(viaB);
        assert.ok(partial.length < fx.closure.length, 'A died before the end');
        await assertStoreMatchesNix(viaB, partial);

        const again = await runCli(['copy', '--store', b.addr, '--attrs', fx.attrsJsonFile]);
        assert.equal(again.code, 0, again.stderr);
        assert.deepEqual(await publishedPaths(viaB), fx.closure);
        await assertStoreMatchesNix(viaB, fx.closure);

        const fsck = await runCli(['fsck', '--store', s.addr]);
        assert.equal(fsck.code, 0, `fsck after the kill:\n${fsck.stdout}\n${fsck.stderr}`);
      } finally {
        await viaB.close();
        await a.stop();
        await b.stop();
        await s.drop();
      }
    });
  }
});
