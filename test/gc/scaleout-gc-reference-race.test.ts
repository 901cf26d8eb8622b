// PathInfo Puts referring to old paths, sent through two daemons sharing an
// S3 + PostgreSQL store, while a collection deletes those paths. Streams of
// Puts start at three moments the collector makes observable: before it
// starts, while it marks (its beforeFence hook), and when it deletes (its
// "gc: deleting" log line); each goes on until the collection is over and
// then sends one more. Whatever the interleaving, no Put may be accepted
// whose reference the store then lacks; a Put refused for a collected
// reference names it, and succeeds once the reference is uploaded again.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { runCli } from '../copy/run-cli.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import type { Store } from '../../src/store/store.js';
import { isKind } from '../../src/castore/errors.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { collectScaleout } from '../../src/gc/scaleout-gc.js';
import { putPath } from './reference-paths.js';

const newPath = (name: string) => `/nix/store/${nix32(randomBytes(20))}-${name}`;

interface Attempt {
  y: string;
  accepted: boolean;
  error?: string;
}

/**
 * Puts new paths referring to `x` until `over()` said true before an
 * attempt (that one is the last); `first` settles with the first attempt.
 */
function stream(store: Store, x: string, label: string, over: () => boolean) {
  let settled!: () => void;
  const first = new Promise<void>((r) => (settled = r));
  const attempts = (async () => {
    const out: Attempt[] = [];
    for (let k = 0; ; k++) {
      const last = over();
      const y = newPath(`gc-ref-race-${label}-${k}`);
      try {
        await putPath(store, y, `${label} ${k}\n`, [x]);
        out.push({ y, accepted: true });
      } catch (err) {
        if (!isKind(err, 'precondition')) throw err;
        out.push({ y, accepted: false, error: (err as Error).message });
      }
      settled();
      if (last) return out;
    }
  })();
  return { first, attempts };
}

describe('PathInfo Puts referring to paths a scale-out collection deletes, through two daemons', () => {
  let s: ScaleoutAddr | undefined;
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) await d.stop();
    await s?.drop();
  });

  it('never leave an accepted PathInfo whose reference is missing; refused ones name it and succeed after it is uploaded again', async (t) => {
    s = await freshScaleoutAddr('gc-ref-race');
    for (let i = 0; i < 2; i++) daemons.push(await startDaemonProcess({ args: ['--store', s.addr] }));
    const via = daemons.map((d) => openStore(sameAddr(d.addr)));
    const groups = ['before', 'marking', 'deleting'] as const;
    const xs = Object.fromEntries(groups.map((g) => [g, [newPath(`gc-ref-race-x-${g}-0`), newPath(`gc-ref-race-x-${g}-1`)]])) as Record<(typeof groups)[number], string[]>;
    let over = false;
    const streams: Record<string, ReturnType<typeof stream>[]> = {};
    const start = (g: (typeof groups)[number]) => (streams[g] = xs[g].map((x, i) => stream(via[i], x, `${g}-${i}`, () => over)));
    try {
      for (const g of groups) for (const x of xs[g]) await putPath(via[0], x, `dependency ${x}\n`, [x]);

      start('before');
      await Promise.all(streams.before.map((st) => st.first));
      const report = await collectScaleout(s.addr, {
        keepSinceMs: 0,
        graceMs: 0,
        nowMs: Date.now(),
        beforeFence: async () => {
          start('marking');
          await Promise.all(streams.marking.map((st) => st.first));
        },
        log: (m) => {
          if (m === 'gc: deleting') start('deleting');
        },
      });
      over = true;
      const results = Object.fromEntries(await Promise.all(groups.map(async (g) => [g, await Promise.all(streams[g].map((st) => st.attempts))] as const)));
      const deleted = new Set(report.deleted);
      for (const g of groups) {
        const all = results[g].flat();
        t.diagnostic(`${g}: ${all.length} Puts, ${all.filter((a) => a.accepted).length} accepted; x deleted: ${xs[g].filter((x) => deleted.has(x.slice(11))).length}/2`);
      }

      // The invariant, over every attempt of every stream.
      const has = async (p: string) => (await via[1].pathInfos.get(parseAbsolute(p).digest)) !== undefined;
      for (const g of groups) {
        for (const [i, attempts] of results[g].entries()) {
          const x = xs[g][i];
          for (const a of attempts.filter((a) => a.accepted)) {
            if (await has(a.y)) assert.ok(await has(x), `${a.y} was accepted and is kept, but its reference ${x} is gone`);
            else assert.ok(deleted.has(a.y.slice(11)), `${a.y} was accepted, then vanished without the collection deleting it`);
          }
        }
      }
      // Stored while the collector marked: journalled, so its reference was spared.
      for (const [i, attempts] of results.marking.entries()) {
        assert.ok(attempts[0].accepted, `the first Put during marking was accepted: ${attempts[0].error}`);
        assert.ok(!deleted.has(xs.marking[i].slice(11)) && (await has(xs.marking[i])));
      }
      // Referring only after the delete phase began: their reference went, so every one was refused…
      for (const [i, attempts] of results.deleting.entries()) {
        const x = xs.deleting[i];
        assert.ok(deleted.has(x.slice(11)), `${x} was collected`);
        for (const a of attempts) assert.equal(a.accepted, false, `${a.y}, referring to the collected ${x}, was accepted`);
        assert.match(attempts[attempts.length - 1].error!, new RegExp(`reference ${x.slice(11)} was garbage-collected`));
        // …until it is uploaded again.
        await putPath(via[i], x, `dependency ${x}\n`, [x]);
        const y = newPath('gc-ref-race-retry');
        await putPath(via[1 - i], y, 'retry\n', [x]);
        assert.ok(await has(y));
      }
    } finally {
      over = true;
      for (const st of Object.values(streams).flat()) await st.attempts.catch(() => {});
      for (const v of via) await v.close();
    }
    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});
