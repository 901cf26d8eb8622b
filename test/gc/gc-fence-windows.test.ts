// Two windows of the PathInfo Put fence, held open with real processes:
//
// * A daemon that answers a Stat while the collector is in its delete phase
//   (after the epoch bump, before the deletions) cached the blobs as
//   present; a PathInfo Put after the deletions must still be refused.
// * A daemon SIGKILLed after storing a PathInfo and before journalling it,
//   while a collector marks: the collector must still keep its content.
//
// Either way fsck --nar stays clean: never a PathInfo with missing content.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { isKind } from '../../src/castore/errors.js';
import type { Directory } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { nixEnv } from '../helpers/nix.js';
import { buildGc, cli, DAY, deleteFromNix, freshSalt, testClock } from './gc-fixture.js';

let tmp: string;
let twin: string;

before(async () => {
  [twin] = await buildGc(freshSalt(), ['twins'], { groups: '1' });
  tmp = await mkdtemp(join(tmpdir(), 'gc-fence-windows-'));
});
after(async () => {
  await deleteFromNix([twin].filter(Boolean));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A store holding `twin`, copied and read "30 days ago" (garbage for --keep-since 1d); its PathInfo, directories and blob digests. */
async function oldTwinStore(data: string): Promise<{ info: PathInfo; dirs: Directory[]; blobs: Map<string, Buffer> }> {
  const store = `file://${data}`;
  const old = await testClock(Date.now() - 30 * DAY);
  const seed = await cli(['copy', '--quiet', '--store', store, twin], old.env());
  assert.equal(seed.code, 0, seed.stderr);
  process.env.NIX_CASTORE_CLOCK_FILE = old.file;
  const local = openStore(sameAddr(store));
  try {
    const info = (await local.pathInfos.get(parseAbsolute(twin).digest))!;
    assert.equal(info.node?.type, 'directory');
    const dirs: Directory[] = [];
    for await (const d of local.directories.getRecursive(info.node!.type === 'directory' ? info.node!.digest : new Uint8Array(32))) dirs.push(d);
    const blobs = new Map<string, Buffer>();
    for (const d of dirs) for (const f of d.files) blobs.set(Buffer.from(f.digest).toString('hex'), (await readAll(local.blobs, f.digest))!);
    assert.ok(blobs.size > 5);
    return { info, dirs, blobs };
  } finally {
    await local.close();
    delete process.env.NIX_CASTORE_CLOCK_FILE;
  }
}

/** The twin's content under another store path (what a second upload of the same files publishes). */
function copyOf(info: PathInfo, label: string): PathInfo {
  return { ...info, node: { ...info.node!, name: Buffer.from(`${label.repeat(32)}-fence-copy`) }, references: [], narinfo: { ...info.narinfo!, signatures: [], referenceNames: [] } };
}

/** The collector as a process; with `stopAt`, it SIGSTOPs itself right after printing a line containing that text. */
function gcChild(data: string, stopAt?: string): { child: ChildProcess; log: () => string; done: Promise<number | null> } {
  const preload = stopAt === undefined ? [] : ['--require', stopAtPreload(stopAt)];
  const child = spawn(process.execPath, [...preload, CLI, 'gc', '--data', data, '--keep-since', '1d', '--grace', '0'], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  return { child, log: () => log, done: new Promise((r) => child.once('exit', (code) => r(code))) };
}

/** Stopped at the line itself, not when the test sees it: a fast collector was past marking by then. */
function stopAtPreload(text: string): string {
  const file = join(tmp, `stop-at-${Buffer.from(text).toString('hex')}.cjs`);
  writeFileSync(
    file,
    `const write = process.stderr.write;
process.stderr.write = function (chunk, ...rest) {
  const r = write.call(this, chunk, ...rest); // synchronous on a pipe: the test has the line
  if (String(chunk).includes(${JSON.stringify(text)})) process.kill(process.pid, 'SIGSTOP');
  return r;
};
`,
  );
  return file;
}

const stopped = (pid: number): boolean => {
  try {
    return /^\d+ \(.*\) T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function until(what: string, cond: () => boolean, log: () => string): Promise<void> {
  for (let i = 0; i < 600 && !cond(); i++) await sleep(50);
  assert.ok(cond(), `${what}; so far:\n${log()}`);
}

describe('the PathInfo Put fence, windows held open', () => {
  let daemon: DaemonProcess | undefined;
  after(async () => {
    await daemon?.stop().catch(() => {});
  });

  it('a Stat answered during the delete phase does not let a later PathInfo Put through', async () => {
    const data = join(tmp, 'stat-window');
    const { info, dirs, blobs } = await oldTwinStore(data);
    daemon = await startDaemonProcess({ args: ['--data', data] });
    // A Put in flight (a live process's marker) holds the collector in its delete phase, after the epoch bump.
    const holder = spawn('sleep', ['120'], { stdio: 'ignore' });
    await writeFile(join(data, 'gc', 'puts', `${holder.pid}-hold-0`), '');
    const gc = gcChild(data);
    const remote = openStore(sameAddr(daemon.addr));
    try {
      await until('the collector entered its delete phase', () => existsSync(join(data, 'gc', 'deleting')), gc.log);
      for (const hex of blobs.keys()) assert.ok(await remote.blobs.stat(Buffer.from(hex, 'hex')), 'present during the window');
      holder.kill('SIGKILL');
      assert.equal(await gc.done, 0, gc.log());
      assert.match(gc.log(), new RegExp(`deleted.*${basename(twin)}|${basename(twin)}`));
      await putClosure(remote.directories, [...dirs].reverse());
      await assert.rejects(remote.pathInfos.put(copyOf(info, 'c')), (err) => isKind(err, 'precondition'), 'its blobs were collected after the daemon saw them');
      // The retry uploads what the daemon now says is missing, and is accepted.
      for (const [hex, bytes] of blobs) if (!(await remote.blobs.stat(Buffer.from(hex, 'hex')))) await putBytes(remote.blobs, bytes);
      await remote.pathInfos.put(copyOf(info, 'c'));
    } finally {
      holder.kill('SIGKILL');
      await remote.close();
      await daemon.stop();
      daemon = undefined;
    }
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('a daemon killed between storing a PathInfo and journalling it: the collector keeps its content', async () => {
    const data = join(tmp, 'journal-window');
    const { info } = await oldTwinStore(data);
    // The instant is chosen, not waited for: the daemon kills itself as it appends to the journal.
    const preload = join(tmp, 'kill-at-journal.cjs');
    await writeFile(
      preload,
      `const fs = require('node:fs');
const append = fs.appendFileSync;
fs.appendFileSync = function (file, ...rest) {
  if (String(file).endsWith('/gc/journal')) process.kill(process.pid, 'SIGKILL');
  return append.call(this, file, ...rest);
};
require('node:module').syncBuiltinESMExports();
`,
    );
    daemon = await startDaemonProcess({ args: ['--data', data], nodeArgs: ['--require', preload] });
    const remote = openStore(sameAddr(daemon.addr));
    // Past its listing of PathInfos, the collector is frozen as it starts marking.
    const gc = gcChild(data, 'gc: marking from');
    try {
      await until('the collector stopped as it began marking', () => stopped(gc.child.pid!), gc.log);
      // Its directories are in the store already (an uploader that found them sends none): only the PathInfo.
      await assert.rejects(remote.pathInfos.put(copyOf(info, 'd')), 'the daemon died in the Put');
      await until('the daemon died', () => daemon!.child.exitCode !== null || daemon!.child.signalCode !== null, () => daemon!.stderr());
      gc.child.kill('SIGCONT');
      assert.equal(await gc.done, 0, gc.log());
    } finally {
      gc.child.kill('SIGCONT');
      await remote.close();
      await daemon.stop().catch(() => {});
      daemon = undefined;
    }
    // The PathInfo the killed Put stored is there, and so is all it refers to.
    const shown = await cli(['path-info', '--store', `file://${data}`, `/nix/store/${'d'.repeat(32)}-fence-copy`]);
    assert.equal(shown.code, 0, shown.stderr);
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('a pin added while the collector deletes waits for it, and never names a path it deleted', async () => {
    const data = join(tmp, 'pin-window');
    await oldTwinStore(data);
    // The collector stalls (blocked, 4 s) after it read the pins and before it deletes: as it records what it deletes.
    const preload = join(tmp, 'stall-at-record.cjs');
    const note = join(tmp, 'stalled');
    await writeFile(
      preload,
      `const fs = require('node:fs');
const write = fs.writeFileSync;
let done = false;
fs.writeFileSync = function (file, ...rest) {
  if (!done && String(file).includes('/gc/deleted/')) {
    done = true;
    write(${JSON.stringify(note)}, 'stalled');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 4000);
  }
  return write.call(this, file, ...rest);
};
require('node:module').syncBuiltinESMExports();
`,
    );
    const gc = spawn(process.execPath, ['--require', preload, CLI, 'gc', '--data', data, '--keep-since', '1d', '--grace', '0'], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    gc.stdout!.on('data', (d) => (log += d));
    gc.stderr!.on('data', (d) => (log += d));
    const gcDone = new Promise<number | null>((r) => gc.once('exit', (code) => r(code)));
    await until('the collector stalled in its delete phase', () => existsSync(note), () => log);
    const pin = await cli(['pin', 'add', 'keepme', '--data', data, twin]);
    assert.equal(await gcDone, 0, log);
    assert.match(log, new RegExp(basename(twin)), 'the collector deleted the twin');
    // The pin waited for the deletions and then found its path gone: refused, and no pin names it.
    assert.notEqual(pin.code, 0, `pin add succeeded for a path the collector deleted:\n${pin.stdout}${pin.stderr}`);
    assert.match(pin.stderr, /not in the store/);
    const list = await cli(['pin', 'list', '--data', data, '--json']);
    assert.doesNotMatch(list.stdout, /keepme/);
  });
});
