// Issue 21: the walk's syscalls per entry were a large part of a copy's
// main-thread CPU. A directory listing gives each entry's type (d_type), so
// directories and symlinks need no lstat: only files do (their size and
// mode). Counted with strace on a real ingest in a child process.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, symlink, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { requireNix, nixStoreDump } from '../helpers/nix.js';

let tmp: string;
let tree: string;
const dirs: string[] = [];
const links: string[] = [];
const files: string[] = [];

/** Ingests argv[2] into a memory store and prints its NAR SHA-256. */
const DRIVER = `
const [ingestUrl, openUrl, uploaderUrl, retryUrl, path] = process.argv.slice(2);
const { ingestPath } = await import(ingestUrl);
const { openStore, sameAddr } = await import(openUrl);
const { BlobUploader } = await import(uploaderUrl);
const { DEFAULT_RETRY } = await import(retryUrl);
const store = openStore(sameAddr('memory://'));
const blobs = new BlobUploader(store.blobs, 8, DEFAULT_RETRY);
const r = await ingestPath(path, Buffer.from('tree'), { formula: 'head', blobs });
await blobs.close();
await store.close();
console.log(r.narSha256.toString('hex'));
`;

const mod = (rel: string): string => new URL(`../../src/${rel}`, import.meta.url).href;

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'ingest-syscalls-'));
  tree = join(tmp, 'tree');
  await mkdir(tree);
  for (let d = 0; d < 6; d++) {
    const dir = join(tree, `d${d}`);
    await mkdir(join(dir, 'sub'), { recursive: true });
    dirs.push(dir, join(dir, 'sub'));
    for (let f = 0; f < 5; f++) {
      await writeFile(join(dir, `f${f}`), `file ${d} ${f}\n`);
      files.push(join(dir, `f${f}`));
    }
    await symlink(`f0`, join(dir, 'link'));
    await symlink(`../f1`, join(dir, 'sub', 'up'));
    links.push(join(dir, 'link'), join(dir, 'sub', 'up'));
  }
  await writeFile(join(tmp, 'driver.mjs'), DRIVER);
});

after(async () => {
  if (tmp && !process.env.KEEP) await rm(tmp, { recursive: true, force: true });
});

describe('ingest: syscalls per entry', () => {
  it('lstats each file once and no directory or symlink (their type comes with the listing)', async () => {
    const log = join(tmp, 'strace.log');
    const args = [mod('upload/ingest.js'), mod('addr/open.js'), mod('upload/blob-uploader.js'), mod('upload/retry.js'), tree];
    const out = execFileSync('strace', ['-f', '-qq', '-s', '4096', '-e', 'trace=%file', '-o', log, process.execPath, join(tmp, 'driver.mjs'), ...args]);
    const narHash = out.toString().trim();
    const dump = await nixStoreDump(tree);
    assert.equal(narHash, createHash('sha256').update(dump).digest('hex'), 'the NAR hash is nix-store --dump | sha256sum');
    const calls = (await readFile(log, 'utf8')).split('\n');
    // stat, lstat, newfstatat, statx: whichever libuv uses.
    const statsOf = (p: string): number => calls.filter((l) => /^\d+ +\w*stat\w*\(/.test(l) && l.includes(`"${p}"`)).length;
    for (const f of files) assert.equal(statsOf(f), 1, `${f} is lstat'ed once`);
    for (const d of dirs) assert.equal(statsOf(d), 0, `${d} (a directory) is not stat'ed`);
    for (const l of links) assert.equal(statsOf(l), 0, `${l} (a symlink) is not stat'ed`);
  });
});
