// Issue 18, finding 4: a valid Directory DAG whose two entries per level
// point at the same child stores a few directories but renders an
// exponentially large NAR. `nar` and `fsck --nar` render a PathInfo's NAR
// only up to the NarSize it states, as the daemon's binary cache does:
// they stop with an error instead of rendering (and, for `nar`, writing)
// it all.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import { putClosure } from '../../src/castore/directory-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { CLI } from '../helpers/daemon.js';
import { runCli } from '../copy/run-cli.js';

/** 2^(LEVELS+1) files of one byte: a NAR of tens of MB from LEVELS + 1 directories. */
const LEVELS = 17;
const STATED_NAR_SIZE = 4096;

let tmp: string;
let data: string;
let storePath: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-nar-cap-'));
  data = join(tmp, 'data');
  const store = openStore(sameAddr(fileAddr(data)));
  try {
    const w = store.blobs.put();
    await w.write(Buffer.from('x'));
    const blob = await w.close();
    let dir: Directory = { directories: [], symlinks: [], files: ['a', 'b'].map((n) => ({ name: Buffer.from(n), digest: blob, size: 1, executable: false })) };
    const closure = [dir];
    for (let i = 0; i < LEVELS; i++) {
      const child = { digest: directoryDigest(dir), size: directorySize(dir, 'head') };
      dir = { files: [], symlinks: [], directories: ['a', 'b'].map((n) => ({ name: Buffer.from(n), ...child })) };
      closure.push(dir);
    }
    const root = await putClosure(store.directories, closure);
    const storeDigest = Buffer.from(blake3(Buffer.from('dag-bomb')).subarray(0, 20));
    const name = `${nix32(storeDigest)}-dag-bomb`;
    storePath = `/nix/store/${name}`;
    await store.pathInfos.put({
      node: { type: 'directory', name: Buffer.from(name), digest: root, size: directorySize(dir, 'head') },
      references: [],
      narinfo: { narSize: STATED_NAR_SIZE, narSha256: Buffer.alloc(32, 1), signatures: [], referenceNames: [] },
    });
  } finally {
    await store.close();
  }
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

it('nar: stops once the NAR passes the NarSize its PathInfo states', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, [CLI, 'nar', '--store', fileAddr(data), storePath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let written = 0;
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (written += d.length));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 1, stderr);
  assert.match(stderr, new RegExp(`longer than the ${STATED_NAR_SIZE} bytes its PathInfo states`));
  assert.match(stderr, /the output is incomplete/);
  assert.ok(written <= STATED_NAR_SIZE, `wrote ${written} bytes, more than the ${STATED_NAR_SIZE} stated`);
});

it('fsck --nar: reports the NAR as not renderable within its NarSize', { timeout: 120_000 }, async () => {
  const r = await runCli(['fsck', '--data', data, '--nar']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`${storePath}: the NAR cannot be rendered: .*longer than the ${STATED_NAR_SIZE} bytes its PathInfo states`));
});
