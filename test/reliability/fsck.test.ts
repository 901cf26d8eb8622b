// `nix-castore fsck` on a real store: clean after a real copy of the
// fixture closure (100 MiB file included), and each kind of damage made by
// hand in a copy of that store is reported, one line per problem, exit 1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rename, rm, truncate, unlink, writeFile, mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { runCli } from '../copy/run-cli.js';
import { assertReported, errorLines } from '../helpers/fsck-output.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { PathInfoCodec, type PathInfo } from '../../src/store/messages.js';
import { readDirectory, type Directory } from '../../src/castore/messages.js';
import { blake3, b3Hex } from '../../src/castore/digest.js';
import { StoreChecker, type Finding } from '../../src/fsck/fsck.js';
import { decodeIndexEntries, encodeIndexEntries, RECORD_HEADER } from '../../src/castore/disk/pack-format.js';

let fx: CopyFixture;
let tmp: string;
let clean: string;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const rel = (kind: string, h: string): string => `${kind}/${h.slice(0, 2)}/${h}`;

before(async () => {
  fx = await copyFixture();
  tmp = await mkdtemp(join(tmpdir(), 'castore-fsck-'));
  clean = join(tmp, 'clean');
  const d = await startDaemonProcess({ dataDir: clean, args: ['--data', clean] });
  try {
    const r = await runCli(['copy', '--store', d.addr, '--attrs', fx.attrsJsonFile]);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await d.stop();
  }
});
after(() => rm(tmp, { recursive: true, force: true }));

/** Drops a small blob (or, from `directory-packs`, a directory) from its pack's index: the store no longer has it. */
async function removePacked(store: string, blobHex: string, folder = 'packs'): Promise<void> {
  const dir = join(store, folder);
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.idx'))) {
    const { entries } = decodeIndexEntries(await readFile(join(dir, name)));
    const kept = entries.filter((e) => hex(e.digest) !== blobHex);
    if (kept.length < entries.length) await writeFile(join(dir, name), encodeIndexEntries(kept));
  }
}

/** A fresh copy of the clean store to damage. */
async function copyOfStore(name: string): Promise<string> {
  const dir = join(tmp, name);
  await cp(clean, dir, { recursive: true });
  return dir;
}

async function pathInfoOf(store: string, path: string): Promise<{ file: string; info: PathInfo }> {
  const file = join(store, rel('pathinfo', hex(parseAbsolute(path).digest)));
  return { file, info: PathInfoCodec.decode(await readFile(file)) };
}

/** Where a packed directory's record is: its pack file, the record's offset, and fsck's name for it. */
async function packedDirectory(store: string, digestHex: string): Promise<{ pack: string; offset: number; length: number; object: string }> {
  const dir = join(store, 'directory-packs');
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.idx'))) {
    const e = decodeIndexEntries(await readFile(join(dir, name))).entries.find((x) => hex(x.digest) === digestHex);
    const base = name.slice(0, -4);
    if (e) return { pack: join(dir, `${base}.pack`), offset: e.offset, length: e.length, object: `directory-packs/${base}.pack@${e.offset}` };
  }
  assert.fail(`directory ${digestHex} is in no pack`);
}

async function directory(store: string, digest: Uint8Array): Promise<Directory> {
  const p = await packedDirectory(store, hex(digest));
  const h = await readFile(p.pack);
  return readDirectory(h.subarray(p.offset + RECORD_HEADER, p.offset + RECORD_HEADER + p.length));
}

/** The root Directory of a directory store path. */
async function rootDir(store: string, path: string): Promise<{ digest: Uint8Array; dir: Directory }> {
  const { info } = await pathInfoOf(store, path);
  assert.equal(info.node?.type, 'directory');
  return { digest: info.node!.digest, dir: await directory(store, info.node!.digest) };
}

function entry<T extends { name: Uint8Array }>(list: T[], name: string): T {
  const e = list.find((x) => Buffer.from(x.name).toString() === name);
  assert.ok(e, `entry ${name}`);
  return e;
}

async function fsckCli(store: string, ...flags: string[]) {
  return runCli(['fsck', '--data', store, ...flags]);
}

/** Runs fsck, expects exit 1 and an error line about `object` matching `what`. */
async function fsckReports(store: string, kind: string, object: string, what: RegExp, flags: string[] = []): Promise<string[]> {
  return assertReported(await fsckCli(store, ...flags), kind, object, what);
}

describe('nix-castore fsck', () => {
  it('a store after a real copy is clean, with and without --nar; --json says so', async () => {
    const plain = await fsckCli(clean);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assert.deepEqual(errorLines(plain.stdout), []);
    assert.match(plain.stdout, /: ok, 0 warnings/);

    const r = await fsckCli(clean, '--nar', '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.warnings, []);
    assert.equal(report.counts.pathInfos, fx.closure.length);
    assert.equal(report.counts.nars, fx.closure.length, 'every NAR rendered');
    assert.ok(report.counts.blobBytes >= 100 * 1024 * 1024, 'the 100 MiB blob was hashed');
    assert.ok(report.counts.narBytes >= 100 * 1024 * 1024);
    assert.ok(report.counts.directories > 0);
    assert.equal(report.counts.orphanedBlobs, 0);
  });

  it('says how far it got while it runs (on stderr), not with --json', async () => {
    const env = { ...process.env, NIX_CASTORE_PROGRESS_MS: '20' };
    const r = await runCli(['fsck', '--data', clean, '--nar'], { env });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /^fsck: \d+ blobs \(\d+ MiB\), \d+ directories, \d+ PathInfos, \d+ NARs checked so far$/m);
    const j = await runCli(['fsck', '--data', clean, '--nar', '--json'], { env });
    assert.equal(j.code, 0, j.stderr);
    assert.doesNotMatch(j.stderr, /checked so far/);
  });

  it('--store file:///DIR is the same as --data DIR; other addresses are refused (exit 2)', async () => {
    const r = await runCli(['fsck', '--store', `file://${clean}`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).store, clean);
    const bad = await runCli(['fsck', '--store', 'memory://']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /on-disk store/);
    const missing = await runCli(['fsck', '--data', join(tmp, 'does-not-exist')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the store/);
  });

  it('a flipped byte in a blob (the 100 MiB one)', async () => {
    const store = await copyOfStore('flipped');
    const { dir } = await rootDir(store, fx.paths.big);
    const blob = rel('blobs', hex(entry(dir.files, 'big.bin').digest));
    const data = await readFile(join(store, blob));
    data[data.length >> 1] ^= 0x01;
    await writeFile(join(store, blob), data);
    const errors = await fsckReports(store, 'blob', blob, /hashes to [0-9a-f]{64}, not to its name/);
    // What it breaks is named too: the store path holding it (not its size, which is unchanged).
    assert.ok(errors.some((l) => l.includes(`${fx.paths.big}: directory closure incomplete`)), errors.join('\n'));
  });

  it('a truncated blob', async () => {
    const store = await copyOfStore('truncated');
    const { digest, dir } = await rootDir(store, fx.paths.big);
    const blob = rel('blobs', hex(entry(dir.files, 'big.bin').digest));
    await truncate(join(store, blob), 12345);
    const errors = await fsckReports(store, 'blob', blob, /content \(12345 bytes\) hashes to/);
    const dirLine = `error: directory ${(await packedDirectory(store, hex(digest))).object}: file 'big.bin': the entry says 104857600 bytes but blob ${blob.slice(-64)} has 12345`;
    assert.ok(errors.includes(dirLine), `${dirLine}\nin:\n${errors.join('\n')}`);
  });

  it('a packed directory with a flipped byte', async () => {
    const store = await copyOfStore('flipped-dir');
    const { digest } = await rootDir(store, fx.paths.tree);
    const p = await packedDirectory(store, hex(digest));
    const data = await readFile(p.pack);
    data[p.offset + RECORD_HEADER + (p.length >> 1)] ^= 0x40;
    await writeFile(p.pack, data);
    const errors = await fsckReports(store, 'directory', p.object, new RegExp(`directory ${hex(digest)}: content \\(${p.length} bytes\\) hashes to`));
    assert.ok(errors.some((l) => l.includes(`${fx.paths.tree}: root directory ${hex(digest)} is corrupt`)), errors.join('\n'));
  });

  it('a directory file full of garbage (stores from before directory packs)', async () => {
    const store = await copyOfStore('garbage');
    const { digest } = await rootDir(store, fx.paths.tree);
    await removePacked(store, hex(digest), 'directory-packs');
    const file = rel('directories', hex(digest));
    await mkdir(join(store, file, '..'), { recursive: true });
    await writeFile(join(store, file), Buffer.from('\x0a\x05hello, this is not a Directory at all\xff\xff', 'latin1'));
    const errors = await fsckReports(store, 'directory', file, /does not decode|hashes to/);
    assert.ok(errors.some((l) => l.includes(`${fx.paths.tree}: root directory ${hex(digest)} is corrupt`)), errors.join('\n'));
  });

  it('a directory that refers to a missing child', async () => {
    const store = await copyOfStore('missing-child');
    const { digest, dir } = await rootDir(store, fx.paths.tree);
    const child = hex(entry(dir.directories, 'a').digest);
    await removePacked(store, child, 'directory-packs');
    const parent = (await packedDirectory(store, hex(digest))).object;
    const errors = await fsckReports(store, 'directory', parent, new RegExp(`directory 'a' refers to ${child}, which is missing`));
    assert.ok(errors.some((l) => l.includes(`${fx.paths.tree}: directory closure incomplete`)), errors.join('\n'));
  });

  it('a PathInfo whose root blob was deleted', async () => {
    const store = await copyOfStore('root-blob');
    const { file, info } = await pathInfoOf(store, fx.paths.file);
    assert.equal(info.node?.type, 'file');
    const blob = hex(info.node!.digest);
    await removePacked(store, blob);
    await fsckReports(store, 'pathinfo', file.slice(store.length + 1), new RegExp(`${fx.paths.file}: root file: blob ${blob} is missing`));
  });

  it('a PathInfo with a wrong NAR hash: only --nar sees it', async () => {
    const store = await copyOfStore('nar-hash');
    const { file, info } = await pathInfoOf(store, fx.paths.tree);
    info.narinfo!.narSha256 = Buffer.from(info.narinfo!.narSha256).map((b) => b ^ 0xff);
    await writeFile(file, PathInfoCodec.encode(info));
    const plain = await fsckCli(store);
    assert.equal(plain.code, 0, `without --nar the NAR is not rendered:\n${plain.stdout}`);
    await fsckReports(store, 'pathinfo', file.slice(store.length + 1), /the NAR renders to \d+ bytes, sha256:\w+; the narinfo records \d+ bytes, sha256:/, ['--nar']);
  });

  it('a PathInfo file under the wrong key', async () => {
    const store = await copyOfStore('wrong-key');
    const { file } = await pathInfoOf(store, fx.paths.middle);
    const key = hex(parseAbsolute(fx.paths.middle).digest);
    const wrong = (key[0] === '0' ? '1' : '0') + key.slice(1);
    const target = join(store, rel('pathinfo', wrong));
    await mkdir(join(target, '..'), { recursive: true });
    await rename(file, target);
    await fsckReports(store, 'pathinfo', rel('pathinfo', wrong), new RegExp(`holds the PathInfo of ${fx.paths.middle}, which belongs under ${rel('pathinfo', key)}`));
  });

  it('temp files of dead processes and stray files are warnings; unreferenced objects are only counted', async () => {
    const store = await copyOfStore('leftovers');
    await writeFile(join(store, 'tmp', '999999999-0123456789abcdef.tmp'), 'half a blob');
    await writeFile(join(store, 'tmp', `${process.pid}-fedcba9876543210.tmp`), 'this test is alive');
    const orphan = Buffer.from('nobody refers to me');
    const orphanHex = b3Hex(blake3(orphan));
    await mkdir(join(store, 'blobs', orphanHex.slice(0, 2)), { recursive: true });
    await writeFile(join(store, rel('blobs', orphanHex)), orphan);
    await writeFile(join(store, 'blobs', 'README'), 'stray');
    const r = await fsckCli(store, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(report.problems, []);
    assert.equal(report.counts.orphanedBlobs, 1);
    assert.equal(report.counts.tempFilesLeftOver, 1);
    assert.equal(report.counts.tempFilesInProgress, 1, 'a live process (this test) owns the other one');
    assert.deepEqual(
      report.warnings.map((w: Finding) => `${w.kind} ${w.object}`).sort(),
      ['layout blobs/README', 'tmp tmp/999999999-0123456789abcdef.tmp'],
    );
    assert.match(report.warnings.find((w: Finding) => w.kind === 'tmp').message, /left by process 999999999, which is not running/);
    assert.ok((await readdir(join(store, 'tmp'))).length === 2, 'fsck only reads: the leftovers are still there');
  });

  it('references spill to scratch files on large stores with the same result', async () => {
    const inMemory = await new StoreChecker(clean).run();
    const scratch = join(tmp, 'scratch');
    await mkdir(scratch);
    const checker = new StoreChecker(clean, { spillLimitBytes: 0, scratchDir: scratch, concurrency: 3 });
    const spilled = await checker.run();
    assert.ok(checker.spilled, 'references went to scratch files');
    assert.deepEqual(spilled, inMemory);
    assert.deepEqual(await readdir(scratch), [], 'scratch files removed');
  });
});
