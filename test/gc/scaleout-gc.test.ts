// The collector of a scale-out store, against real Ceph (radosgw) and
// PostgreSQL: policy and closure, space returned, fsck clean afterwards,
// one collector per store, and the races with PathInfo Puts made to happen.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { freshScaleoutAddr, scaleoutEnv, scaleoutS3Client, type ScaleoutAddr } from '../helpers/scaleout.js';
import { runCli } from '../copy/run-cli.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { copyFixture } from '../helpers/copy-fixtures.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { GC_LOCK_HELD } from '../../src/scaleout/pg-gc.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directorySize } from '../../src/castore/directory.js';
import type { Node } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import type { Store } from '../../src/store/store.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { PgPathInfoService } from '../../src/scaleout/pg-pathinfo-service.js';
import { PgGc } from '../../src/scaleout/pg-gc.js';
import { collectScaleout } from '../../src/gc/scaleout-gc.js';
import { isKind } from '../../src/castore/errors.js';
import type { GcReport } from '../../src/gc/report.js';

const b = (s: string): Buffer => Buffer.from(s);
const sp = (c: string, name: string) => `/nix/store/${c.repeat(32)}-${name}`;
const DEP = sp('1', 'gc-dep');
const APP = sp('2', 'gc-app');
const JUNK = sp('3', 'gc-junk');
const LATE = sp('4', 'gc-late');

const stores: ScaleoutAddr[] = [];
after(async () => {
  for (const s of stores) await s.drop().catch(() => {});
});

async function put(store: Store, path: string, node: Node, refs: string[] = []): Promise<void> {
  const nar = await store.pathInfos.calculateNar(node);
  const info: PathInfo = {
    node: { ...node, name: b(path.slice(11)) } as Node,
    references: refs.map((r) => parseAbsolute(r).digest),
    narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: refs.map((r) => r.slice(11)) },
  };
  await store.pathInfos.put(info);
}

const fileNode = (digest: Buffer, size: number): Node => ({ type: 'file', name: b('x'), digest, size, executable: false });

/** DEP (a directory), APP (a file referring to DEP), JUNK (a big blob of its own, an S3 object alone). */
async function populate(label: string) {
  const s = await freshScaleoutAddr(label);
  stores.push(s);
  const store = openStore(sameAddr(s.addr));
  const junk = randomBytes(1536 * 1024);
  try {
    const a = b('dep file\n');
    const aD = await putBytes(store.blobs, a);
    const dir = { directories: [], files: [{ name: b('a.txt'), digest: aD, size: a.length, executable: false }], symlinks: [] };
    const dirD = await putClosure(store.directories, [dir]);
    await put(store, DEP, { type: 'directory', name: b('x'), digest: dirD, size: directorySize(dir) });
    const app = b('app refers to ' + DEP);
    await put(store, APP, fileNode(await putBytes(store.blobs, app), app.length), [DEP]);
    const junkD = await putBytes(store.blobs, junk);
    await put(store, JUNK, fileNode(junkD, junk.length));
    return { s, junkD, junk };
  } finally {
    await store.close();
  }
}

async function objects(addr: string): Promise<string[]> {
  const loc = parseS3Addr(addr);
  const c = scaleoutS3Client(await scaleoutEnv());
  try {
    const r = await c.send(new ListObjectsV2Command({ Bucket: loc.bucket, Prefix: loc.prefix }));
    return (r.Contents ?? []).map((o) => o.Key!.slice(loc.prefix.length)).sort();
  } finally {
    c.destroy();
  }
}

describe('gc of a scale-out store', () => {
  it('keeps the pinned closure, deletes the rest with its S3 objects, and fsck --nar is clean afterwards', async () => {
    const { s } = await populate('gc-policy');
    const before = await objects(s.addr);
    const pin = await runCli(['pin', 'add', 'release', APP, '--store', s.addr]);
    assert.equal(pin.code, 0, pin.stderr);
    const dry = await runCli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual((JSON.parse(dry.stdout) as GcReport).deleted, [JUNK.slice(11)]);
    assert.deepEqual(await objects(s.addr), before, 'a dry run changes nothing');

    const r = await runCli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as GcReport;
    assert.deepEqual(report.deleted, [JUNK.slice(11)]);
    assert.deepEqual(
      report.kept.map((k) => `${k.path}:${k.reason}`).sort(),
      [`${DEP.slice(11)}:reference`, `${APP.slice(11)}:pinned`],
    );
    assert.equal(report.blobs.deleted, 1);
    assert.ok(report.bytes.reclaimed >= 1536 * 1024, `space returned: ${JSON.stringify(report.bytes)}`);
    const now = await objects(s.addr);
    assert.equal(now.length, before.length - 1, `the junk blob's object is gone: ${before} → ${now}`);

    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    const store = openStore(sameAddr(s.addr));
    try {
      assert.equal(await store.pathInfos.get(parseAbsolute(JUNK).digest), undefined);
      assert.ok(await store.pathInfos.get(parseAbsolute(DEP).digest));
    } finally {
      await store.close();
    }
  });

  it('refuses a second collector of the same store, saying so', async () => {
    const { s } = await populate('gc-lock');
    const first = await PgGc.open(s.pgUrl);
    try {
      const r = await runCli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /another garbage collection of this store is running/);
    } finally {
      await first.close();
    }
    assert.equal((await objects(s.addr)).length > 0, true);
  });

  it('a PathInfo Put whose content the collection removed after its check gets FAILED_PRECONDITION, and succeeds when retried', async () => {
    const { s, junkD, junk } = await populate('gc-race');
    const store = openStore(sameAddr(s.addr));
    let checked!: () => void;
    const atCheck = new Promise<void>((r) => (checked = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The Put's content check passes, then waits until the collection is done.
    const blobs = new Proxy(store.blobs, {
      get(t, p) {
        // PathInfo Put checks content with sizeOf (stat where a store has none).
        if (p !== 'stat' && p !== 'sizeOf') return Reflect.get(t, p, t);
        return async (d: Uint8Array) => {
          const r = p === 'sizeOf' ? await t.sizeOf!(d) : await t.stat(d);
          checked();
          await gate;
          return r;
        };
      },
    });
    const racing = new PgPathInfoService(s.pgUrl, { blobs, directories: store.directories });
    try {
      const info: PathInfo = { node: { ...fileNode(junkD, junk.length), name: b(LATE.slice(11)) } as Node, references: [], narinfo: undefined };
      const nar = await store.pathInfos.calculateNar(info.node!);
      info.narinfo = { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] };
      const putting = racing.put(info).then(
        () => 'stored',
        (err: unknown) => (isKind(err, 'precondition') ? 'precondition' : Promise.reject(err)),
      );
      await atCheck;
      const report = await collectScaleout(s.addr, { keepSinceMs: 0, graceMs: 0, nowMs: Date.now() });
      assert.ok(report.deleted.includes(JUNK.slice(11)));
      assert.equal(report.blobs.deleted >= 1, true);
      release();
      assert.equal(await putting, 'precondition');
      assert.equal(await store.pathInfos.get(parseAbsolute(LATE).digest), undefined);
      // The retry uploads what is missing, then the PathInfo.
      await putBytes(store.blobs, junk);
      await store.pathInfos.put(info);
      assert.ok(await store.pathInfos.get(parseAbsolute(LATE).digest));
    } finally {
      release();
      await racing.close();
      await store.close();
    }
    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('a PathInfo stored while the collector marks is journalled: it and its content survive', async () => {
    const { s, junkD, junk } = await populate('gc-journal');
    const store = openStore(sameAddr(s.addr));
    try {
      const report = await collectScaleout(s.addr, {
        keepSinceMs: 0,
        graceMs: 0,
        nowMs: Date.now(),
        beforeFence: async () => {
          const info: PathInfo = { node: { ...fileNode(junkD, junk.length), name: b(LATE.slice(11)) } as Node, references: [parseAbsolute(APP).digest], narinfo: undefined };
          const nar = await store.pathInfos.calculateNar(info.node!);
          info.narinfo = { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [APP.slice(11)] };
          await store.pathInfos.put(info);
        },
      });
      assert.ok(report.deleted.includes(JUNK.slice(11)), 'the old path referring to the same blob goes');
      assert.ok(!report.deleted.includes(APP.slice(11)), 'the late path’s reference stays');
      assert.ok(!report.deleted.includes(DEP.slice(11)), 'and its closure');
      assert.ok(await store.pathInfos.get(parseAbsolute(LATE).digest));
    } finally {
      await store.close();
    }
    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('a pin added while the collector deletes waits for it, and never names a path it deleted', async () => {
    const { s } = await populate('gc-pin-window');
    let pin: Promise<{ code: number | null; stdout: string; stderr: string }> | undefined;
    const report = await collectScaleout(s.addr, {
      keepSinceMs: 0,
      graceMs: 0,
      nowMs: Date.now(),
      // The collector has read the pins and is about to delete: a real process pins JUNK now.
      beforeDelete: async () => {
        pin = runCli(['pin', 'add', 'keepme', JUNK, '--store', s.addr]);
        await Promise.race([pin, new Promise((r) => setTimeout(r, 3000))]);
      },
    });
    assert.ok(report.deleted.includes(JUNK.slice(11)), 'the collector deleted JUNK');
    const r = await pin!;
    // The pin waited for the deletions, then found its path gone: refused, and no pin names it.
    assert.notEqual(r.code, 0, `pin add succeeded for a path the collector deleted:\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /not in the store/);
    const list = await runCli(['pin', 'list', '--store', s.addr, '--json']);
    assert.doesNotMatch(list.stdout, /keepme/);
  });

  it('a daemon serving the store pins and collects through its AdminService', async () => {
    const { s } = await populate('gc-daemon');
    const d = await startDaemonProcess({ args: ['--store', s.addr] });
    try {
      const pin = await runCli(['pin', 'add', 'release', APP, '--store', d.addr]);
      assert.equal(pin.code, 0, pin.stderr);
      const list = await runCli(['pin', 'list', '--store', s.addr, '--json']);
      assert.deepEqual(JSON.parse(list.stdout), { release: [APP] }, 'the pin is in PostgreSQL');
      const r = await runCli(['gc', '--store', d.addr, '--keep-since', '0', '--grace', '0', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((JSON.parse(r.stdout) as GcReport).deleted, [JUNK.slice(11)]);
    } finally {
      await d.stop('SIGKILL');
    }
    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('a collector SIGKILLed in its delete phase blocks no upload, and the next collection runs', async () => {
    const { s, junkD, junk } = await populate('gc-kill');
    const pgGc = new URL('../../src/scaleout/pg-gc.js', import.meta.url).href;
    const script = `const { PgGc } = await import(${JSON.stringify(pgGc)}); const g = await PgGc.open(process.argv[1]); await g.setPhase('deleting'); console.log('deleting'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, s.pgUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('deleting') && resolve());
      child.on('exit', (code) => reject(new Error(`the collector exited early (${code})`)));
    });
    child.kill('SIGKILL');
    // PostgreSQL ends the killed session (and its lock) once it sees the socket closed.
    const c = new pg.Client({ connectionString: s.pgUrl });
    await c.connect();
    try {
      while ((await c.query<{ held: boolean }>(`SELECT ${GC_LOCK_HELD} AS held`)).rows[0].held) await new Promise((r) => setTimeout(r, 50));
      assert.equal((await c.query<{ phase: string }>('SELECT phase FROM gc_state')).rows[0].phase, 'deleting', 'the phase row is left behind');
    } finally {
      await c.end();
    }
    const store = openStore(sameAddr(s.addr));
    try {
      const info: PathInfo = { node: { ...fileNode(junkD, junk.length), name: b(LATE.slice(11)) } as Node, references: [], narinfo: undefined };
      const nar = await store.pathInfos.calculateNar(info.node!);
      info.narinfo = { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] };
      await store.pathInfos.put(info);
    } finally {
      await store.close();
    }
    const r = await runCli(['gc', '--store', s.addr, '--keep-since', '1d', '--grace', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as GcReport).paths.deleted, 0);
  });

  it('a PathInfo Put arriving while a collector deletes waits for it, then is stored', async () => {
    const { s, junkD, junk } = await populate('gc-wait');
    // populate's connections are closed, but a backend may linger a moment: its fence looks do not count.
    const watcher = new pg.Client({ connectionString: s.pgUrl });
    await watcher.connect();
    const before = (await watcher.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')).rows.map((r) => r.pid);
    const gc = await PgGc.open(s.pgUrl);
    const store = openStore(sameAddr(s.addr));
    try {
      await gc.setPhase('deleting');
      const info: PathInfo = { node: { ...fileNode(junkD, junk.length), name: b(LATE.slice(11)) } as Node, references: [], narinfo: undefined };
      const nar = await store.pathInfos.calculateNar(info.node!);
      info.narinfo = { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] };
      let settled = false;
      const putting = store.pathInfos.put(info).finally(() => (settled = true));
      // The Put waits once one backend has run the fence's look at gc_state
      // twice (a later query_start): it read `deleting` and looked again.
      // Without the wait it would go on to its content checks and the FOR
      // SHARE look, and never repeat this one.
      const firstLook = new Map<number, string>();
      for (const deadline = Date.now() + 60_000; ; ) {
        const r = await watcher.query<{ pid: number; started: string }>(
          `SELECT pid, query_start::text AS started FROM pg_stat_activity WHERE datname = current_database() AND pid <> ALL($1::int[]) AND query LIKE 'SELECT epoch, CASE WHEN%' AND query NOT LIKE '%FOR SHARE%'`,
          [before],
        );
        if (r.rows.some((row) => firstLook.has(row.pid) && firstLook.get(row.pid) !== row.started)) break;
        for (const row of r.rows) if (!firstLook.has(row.pid)) firstLook.set(row.pid, row.started);
        assert.ok(Date.now() < deadline, 'the Put did not look at the collector’s phase again: it did not wait');
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(settled, false, 'the Put was not refused at once');
      await gc.close();
      await putting;
      assert.ok(await store.pathInfos.get(parseAbsolute(LATE).digest));
    } finally {
      await watcher.end();
      await gc.close();
      await store.close();
    }
  });

  it('a closure Nix built: the pinned part is kept and renders what nix-store --dump gives, the rest goes', async () => {
    const fx = await copyFixture('scaleout');
    const s = await freshScaleoutAddr('gc-nix');
    stores.push(s);
    const copied = await runCli(['copy', '--store', s.addr, '--attrs', fx.attrsJsonFile]);
    assert.equal(copied.code, 0, copied.stderr);
    const pin = await runCli(['pin', 'add', 'mid', fx.paths.middle, '--store', s.addr]);
    assert.equal(pin.code, 0, pin.stderr);
    const r = await runCli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const keep = [fx.paths.middle, fx.paths.big].sort();
    assert.deepEqual((JSON.parse(r.stdout) as GcReport).deleted, fx.closure.filter((p) => !keep.includes(p)).map((p) => p.slice(11)).sort());
    const store = openStore(sameAddr(s.addr));
    try {
      assert.deepEqual(await publishedPaths(store), keep);
      await assertStoreMatchesNix(store, keep);
    } finally {
      await store.close();
    }
    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});
