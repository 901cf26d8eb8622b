// The core race, made to happen: a daemon has seen an old path's blobs (a
// client's Stat found them), the collector then deletes them, and a
// PathInfo referring to them comes after. The daemon must refuse it with
// FAILED_PRECONDITION — its cached pack index is stale — and accept it once
// the client uploads what is missing. Never a stored PathInfo whose content
// is gone (fsck --nar stays clean).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { isKind } from '../../src/castore/errors.js';
import type { Directory } from '../../src/castore/messages.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { buildGc, cli, DAY, deleteFromNix, freshSalt, narOf, testClock } from './gc-fixture.js';
import { copyClosure } from '../../src/upload/copy.js';
import { parsePathInfoJson } from '../../src/closure/path-info-json.js';
import { nixPathInfoJson } from '../../src/upload/nix-cli.js';
import { nixStoreDump } from '../helpers/nix.js';

let tmp: string;
let data: string;
let daemon: DaemonProcess | undefined;
let twin: string;
let live: string[];
let shared: string;

before(async () => {
  const salt = freshSalt();
  [twin] = await buildGc(salt, ['twins'], { groups: '1' });
  live = await buildGc(salt, ['live'], { groups: '1', rounds: '1' });
  [shared] = await buildGc(salt, ['shared'], { groups: '1' });
  tmp = await mkdtemp(join(tmpdir(), 'gc-race-'));
  data = join(tmp, 'data');
});

after(async () => {
  await daemon?.stop();
  await deleteFromNix([twin, ...(live ?? [])].filter(Boolean));
  await deleteFromNix([shared].filter(Boolean));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('a PathInfo Put racing the collector', () => {
  it('is refused with FAILED_PRECONDITION after its blobs were collected, and accepted once they are uploaded again', async () => {
    const fileStore = `file://${data}`;
    const old = await testClock(Date.now() - 30 * DAY);
    const seed = await cli(['copy', '--quiet', '--store', fileStore, twin], old.env());
    assert.equal(seed.code, 0, seed.stderr);

    // What the twin holds, read straight from the store (a read, recorded as long ago).
    process.env.NIX_CASTORE_CLOCK_FILE = old.file;
    const local = openStore(sameAddr(fileStore));
    const info = (await local.pathInfos.get(parseAbsolute(twin).digest))!;
    const dirs: Directory[] = [];
    for await (const d of local.directories.getRecursive(info.node!.type === 'directory' ? info.node!.digest : new Uint8Array(32))) dirs.push(d);
    const blobs = new Map<string, Buffer>();
    for (const d of dirs) for (const f of d.files) blobs.set(Buffer.from(f.digest).toString('hex'), (await readAll(local.blobs, f.digest))!);
    await local.close();
    delete process.env.NIX_CASTORE_CLOCK_FILE;
    assert.ok(blobs.size > 10);

    daemon = await startDaemonProcess({ args: ['--data', data] });
    const remote = openStore(sameAddr(daemon.addr));
    try {
      // The daemon sees the blobs (an upload's Stat: "present, skip it").
      for (const hex of blobs.keys()) assert.ok(await remote.blobs.stat(Buffer.from(hex, 'hex')), 'present before the collection');

      const gc = await cli(['gc', '--store', fileStore, '--keep-since', '1d', '--grace', '0', '--json']);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(JSON.parse(gc.stdout).deleted, [basename(twin)]);

      // The upload goes on: its directories, then the PathInfo (another store path, same content).
      const name = `${'a'.repeat(32)}-gc-race-copy`;
      const copyInfo = {
        ...info,
        node: { ...info.node!, name: Buffer.from(name) },
        narinfo: { ...info.narinfo!, signatures: [] },
      };
      copyInfo.references = [];
      copyInfo.narinfo.referenceNames = [];
      await putClosure(remote.directories, [...dirs].reverse());
      // Its large blob it sends anyway (say, Stat came after the collection): only packed blobs are missing.
      const large = [...blobs.values()].filter((b) => b.length > 256 << 10);
      assert.equal(large.length, 1);
      await putBytes(remote.blobs, large[0]);
      await assert.rejects(remote.pathInfos.put(copyInfo), (err) => isKind(err, 'precondition'), 'a PathInfo whose blobs were collected is refused');

      // The retry asks afresh, uploads what is missing, and is accepted.
      let sent = 0;
      for (const [hex, bytes] of blobs) {
        if (await remote.blobs.stat(Buffer.from(hex, 'hex'))) continue;
        await putBytes(remote.blobs, bytes);
        sent++;
      }
      assert.equal(sent, blobs.size - 1, 'after the collection the daemon answers Stat from the disk');
      await remote.pathInfos.put(copyInfo);

      // A PathInfo referring to the collected path (its uploader found it present before) is refused too…
      const node = { type: 'symlink' as const, name: Buffer.from(`${'b'.repeat(32)}-gc-race-app`), target: Buffer.from(twin) };
      const nar = await remote.pathInfos.calculateNar(node);
      const app = {
        node,
        references: [parseAbsolute(twin).digest],
        narinfo: { ...info.narinfo!, ...nar, signatures: [], referenceNames: [basename(twin)] },
      };
      await assert.rejects(remote.pathInfos.put(app), (err) => isKind(err, 'precondition') && /garbage-collected/.test((err as Error).message));
      // …until the reference is uploaded again.
      await remote.pathInfos.put({ ...info, narinfo: { ...info.narinfo!, signatures: [] } });
      await remote.pathInfos.put(app);
    } finally {
      await remote.close();
    }
    await daemon.stop();
    daemon = undefined;
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('copy runs again for paths that lost content to a collection between its lookups and its PathInfo Put', async () => {
    const data2 = join(tmp, 'copy-retry');
    const fileStore = `file://${data2}`;
    const old = await testClock(Date.now() - 30 * DAY);
    // Old twins of the live path's files, and of the shared path it refers to.
    const seed = await cli(['copy', '--quiet', '--store', fileStore, twin, shared], old.env());
    assert.equal(seed.code, 0, seed.stderr);
    // The daemon records the copy's lookups as reads (written every 2 s): at
    // the old time, or a slow machine would flush the read of `shared` before
    // the collection and --keep-since would keep it.
    daemon = await startDaemonProcess({ args: ['--data', data2], env: old.env() });
    const remote = openStore(sameAddr(daemon.addr));
    const logs: string[] = [];
    let collections = 0;
    try {
      // The real daemon; only the moment of the collection is chosen: right
      // before the copy's first PathInfo Put, after it found the blobs present.
      const pathInfos = remote.pathInfos;
      const store = {
        ...remote,
        pathInfos: {
          get: pathInfos.get.bind(pathInfos),
          list: pathInfos.list.bind(pathInfos),
          calculateNar: pathInfos.calculateNar.bind(pathInfos),
          close: pathInfos.close.bind(pathInfos),
          async put(info: Parameters<typeof pathInfos.put>[0]) {
            if (collections++ === 0) {
              const gc = await cli(['gc', '--store', fileStore, '--keep-since', '1d', '--grace', '0', '--json']);
              assert.equal(gc.code, 0, gc.stderr);
              assert.deepEqual(JSON.parse(gc.stdout).deleted.sort(), [basename(shared), basename(twin)].sort());
            }
            return pathInfos.put(info);
          },
        },
      };
      const closure = parsePathInfoJson(await nixPathInfoJson([live[0]]), { file: 'nix path-info' });
      const report = await copyClosure({ store, closure, jobs: 2, formula: 'head', events: { log: (m) => logs.push(m) } });
      assert.deepEqual(report.failed, []);
      assert.ok(logs.some((l) => /copying again/.test(l)), logs.join('\n'));
      for (const p of [live[0], shared]) assert.ok(await remote.pathInfos.get(parseAbsolute(p).digest), `${p} present`);
    } finally {
      await remote.close();
    }
    await daemon.stop();
    daemon = undefined;
    const fsck = await cli(['fsck', '--data', data2, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    for (const p of [live[0], shared]) assert.ok((await narOf(fileStore, p)).equals(await nixStoreDump(p)), p);
  });
});
