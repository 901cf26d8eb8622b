// The same case on both collecting backends (file:// and S3 + PostgreSQL),
// each behind a real daemon: a client found a path X in the store (so copy
// skips it), a collection then deleted X, and a PathInfo referring to X
// comes after. Storing it would leave a closure the store cannot serve
// whole, so it is refused with FAILED_PRECONDITION naming X — and accepted
// once X is uploaded again (X refers to itself, as many Nix paths do: that
// is no reason to refuse X).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';
import { runCli } from '../copy/run-cli.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { isKind } from '../../src/castore/errors.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import type { GcReport } from '../../src/gc/report.js';
import { putPath } from './reference-paths.js';

const X = `/nix/store/${'c'.repeat(32)}-gc-collected-dep`;
const Y = `/nix/store/${'d'.repeat(32)}-gc-late-app`;

interface Backend {
  /** The store's own address, for gc and fsck. */
  store: string;
  daemon: DaemonProcess;
  cleanup(): Promise<void>;
}

const backends: [string, () => Promise<Backend>][] = [
  ['file://', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gc-collected-ref-'));
    const daemon = await startDaemonProcess({ args: ['--data', dir] });
    return { store: fileAddr(dir), daemon, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }],
  ['s3:// + postgres://', async () => {
    const s = await freshScaleoutAddr('gc-collected-ref');
    const daemon = await startDaemonProcess({ args: ['--store', s.addr] });
    return { store: s.addr, daemon, cleanup: () => s.drop() };
  }],
];

for (const [name, make] of backends) {
  describe(`${name}: a PathInfo Put whose reference a collection deleted`, () => {
    let be: Backend | undefined;
    after(async () => {
      await be?.daemon.stop();
      await be?.cleanup();
    });

    it('is refused with FAILED_PRECONDITION naming the reference, and accepted once the reference is uploaded again', async () => {
      be = await make();
      const remote = openStore(sameAddr(be.daemon.addr));
      try {
        await putPath(remote, X, 'the dependency\n', [X]);
        // The uploader of Y asks now: X is there, so it would not send X.
        assert.ok(await remote.pathInfos.get(parseAbsolute(X).digest));

        const gc = await runCli(['gc', '--store', be.store, '--keep-since', '0', '--grace', '0', '--json']);
        assert.equal(gc.code, 0, gc.stderr);
        assert.deepEqual((JSON.parse(gc.stdout) as GcReport).deleted, [X.slice(11)]);

        await assert.rejects(putPath(remote, Y, 'the app\n', [X]), (err) => {
          assert.ok(isKind(err, 'precondition'), `FAILED_PRECONDITION, got ${String(err)}`);
          assert.match((err as Error).message, new RegExp(`reference ${X.slice(11)} was garbage-collected; upload it before the PathInfo`));
          return true;
        });
        assert.equal(await remote.pathInfos.get(parseAbsolute(Y).digest), undefined, 'nothing of Y was stored');

        // The retry uploads X first (it refers to itself), then Y.
        await putPath(remote, X, 'the dependency\n', [X]);
        await putPath(remote, Y, 'the app\n', [X]);
        assert.ok(await remote.pathInfos.get(parseAbsolute(Y).digest));
      } finally {
        await remote.close();
      }
      const fsck = await runCli(['fsck', '--store', be.store, '--nar']);
      assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    });
  });
}
