// Space: after half of a real-files closure's paths are collected, `du` of
// the store directory drops by at least 90% of the bytes only those paths
// held (their loose blob files go, and the pack holding their small files
// is rewritten with the live records only).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildGc, cli, deleteFromNix, freshSalt } from './gc-fixture.js';

const GROUPS = 6;
let tmp: string;
let live: string[];
let shared: string;

async function fileBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await fileBytes(p);
    else if (e.isFile()) total += (await lstat(p)).size;
  }
  return total;
}

async function du(dir: string): Promise<number> {
  const { stdout } = await promisify(execFile)('du', ['-s', '--block-size=1', dir]);
  return Number(stdout.split('\t')[0]);
}

before(async () => {
  const salt = freshSalt();
  const argstr = { rounds: '1', groups: String(GROUPS) };
  [shared] = await buildGc(salt, ['shared'], argstr);
  live = await buildGc(salt, ['live'], argstr);
  tmp = await mkdtemp(join(tmpdir(), 'gc-space-'));
});

after(async () => {
  await deleteFromNix(live ?? []);
  await deleteFromNix([shared].filter(Boolean));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('gc returns the space', () => {
  it('du drops by ≥ 90% of the unreachable bytes when half the paths go', async () => {
    const data = join(tmp, 'data');
    const store = ['--store', `file://${data}`];
    assert.equal((await cli(['copy', '--quiet', ...store, ...live])).code, 0);
    const keep = live.slice(0, GROUPS / 2);
    const drop = live.slice(GROUPS / 2);
    assert.equal((await cli(['pin', 'add', 'half', ...keep, ...store])).code, 0);
    let unreachable = 0;
    for (const p of drop) unreachable += await fileBytes(p);
    const before = await du(data);
    const gc = await cli(['gc', ...store, '--keep-since', '0', '--grace', '0', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.equal(report.paths.deleted, drop.length);
    const after = await du(data);
    process.stderr.write(`gc-space: du ${before} → ${after} bytes (${before - after} reclaimed; ${unreachable} unreachable file bytes; report says ${report.bytes.reclaimed})\n`);
    assert.ok(before - after >= 0.9 * unreachable, `du dropped by ${before - after} bytes, less than 90% of ${unreachable}`);
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});
