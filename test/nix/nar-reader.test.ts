// The NAR reader against real Nix: every NAR `nix-store --dump` writes of a
// tricky tree reads back to the same events (and re-encodes to the same
// bytes), in chunks of any size; and each malformed NAR below is refused
// by the reader AND by `nix-store --restore`, so the reader refuses what
// Nix refuses.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNar, NarError, type NarSink } from '../../src/nix/nar-reader.js';
import { narBytes, type NarNode } from '../../src/nix/nar.js';
import { requireNix } from '../helpers/nix.js';

let tmp: string;

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'nar-reader-'));
});

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function run(cmd: string, args: string[], input?: Buffer): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 28 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() }),
    );
    c.stdin!.end(input);
  });
}

async function* inChunks(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

type Tree = { kind: 'file'; executable: boolean; data: Buffer } | { kind: 'link'; target: Buffer } | { kind: 'dir'; entries: [Buffer, Tree][] };

/** Rebuilds the tree from the reader's events. */
async function readTree(src: AsyncIterable<Uint8Array>): Promise<Tree> {
  const stack: { entries: [Buffer, Tree][] }[] = [];
  const names: (Uint8Array | undefined)[] = [];
  let root: Tree | undefined;
  const place = (name: Uint8Array | undefined, t: Tree) => {
    if (stack.length === 0) root = t;
    else stack[stack.length - 1].entries.push([Buffer.from(name!), t]);
  };
  const sink: NarSink = {
    directoryStart(name) {
      stack.push({ entries: [] });
      names.push(name);
    },
    directoryEnd() {
      const d = stack.pop()!;
      place(names.pop(), { kind: 'dir', entries: d.entries });
    },
    async file(name, executable, size, contents) {
      const parts: Buffer[] = [];
      for await (const c of contents) parts.push(Buffer.from(c));
      const data = Buffer.concat(parts);
      assert.equal(data.length, size);
      place(name, { kind: 'file', executable, data });
    },
    symlink(name, target) {
      place(name, { kind: 'link', target: Buffer.from(target) });
    },
  };
  await readNar(src, sink);
  return root!;
}

function toNarNode(t: Tree): NarNode {
  if (t.kind === 'file') return { type: 'regular', executable: t.executable, size: t.data.length, contents: async function* () { if (t.data.length) yield t.data; } };
  if (t.kind === 'link') return { type: 'symlink', target: t.target };
  return { type: 'directory', entries: async function* () { for (const [name, node] of t.entries) yield { name, node: toNarNode(node) }; } };
}

describe('NARs that Nix writes', () => {
  it('read back to the same bytes, whatever the chunk size', async () => {
    const root = join(tmp, 'tree');
    await mkdir(join(root, 'a/b/c'), { recursive: true });
    await mkdir(join(root, 'empty'));
    await writeFile(join(root, 'a/b/c/deep'), 'deep\n');
    await writeFile(join(root, 'empty-file'), '');
    await writeFile(join(root, 'seven'), '1234567');
    await writeFile(join(root, 'big'), Buffer.alloc(300_000, 7));
    await writeFile(join(root, 'run'), '#!/bin/sh\n');
    await chmod(join(root, 'run'), 0o755);
    await writeFile(join(root, Buffer.from([0x6e, 0xe9, 0x2e, 0x74]).toString('latin1')), 'latin1 name');
    await symlink('a/b/c/deep', join(root, 'link'));
    await symlink('/nowhere/at/all', join(root, 'dangling'));
    const dump = (await run('nix-store', ['--dump', root])).stdout;
    for (const size of [1, 7, 8, 13, 4096, dump.length]) {
      const tree = await readTree(inChunks(dump, size));
      assert.ok(Buffer.from(await narBytes(toNarNode(tree))).equals(dump), `chunks of ${size}`);
    }
    for (const single of [join(root, 'seven'), join(root, 'link'), join(root, 'run')]) {
      const d = (await run('nix-store', ['--dump', single])).stdout;
      assert.ok(Buffer.from(await narBytes(toNarNode(await readTree(inChunks(d, 5))))).equals(d), single);
    }
  });
});

const s = (x: string | Buffer): Buffer => {
  const b = typeof x === 'string' ? Buffer.from(x) : x;
  const out = Buffer.alloc(8 + Math.ceil(b.length / 8) * 8);
  out.writeBigUInt64LE(BigInt(b.length));
  b.copy(out, 8);
  return out;
};
const nar = (...parts: (string | Buffer)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? s(p) : p)));
const reg = (data: string) => ['(', 'type', 'regular', 'contents', data, ')'] as const;
const entry = (name: string | Buffer, ...node: (string | Buffer)[]) => ['entry', '(', 'name', name, 'node', ...node, ')'];

const BAD: [string, Buffer, RegExp][] = [
  ['wrong magic', nar('nix-archive-2', ...reg('x')), /not a NAR/],
  ['empty input', Buffer.alloc(0), /not a NAR|ends too early/],
  ['truncated contents', nar('nix-archive-1', '(', 'type', 'regular', 'contents').subarray(0) && Buffer.concat([nar('nix-archive-1', '(', 'type', 'regular', 'contents'), Buffer.from([10, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('abc')]), /ends too early/],
  ['missing close', nar('nix-archive-1', '(', 'type', 'regular', 'contents', 'x'), /ends too early/],
  ['unknown type', nar('nix-archive-1', '(', 'type', 'fifo', ')'), /unknown node type/],
  ['duplicate entries', nar('nix-archive-1', '(', 'type', 'directory', ...entry('a', ...reg('1')), ...entry('a', ...reg('2')), ')'), /duplicate/],
  ['entry named ..', nar('nix-archive-1', '(', 'type', 'directory', ...entry('..', ...reg('1')), ')'), /not allowed/],
  ['entry with a slash', nar('nix-archive-1', '(', 'type', 'directory', ...entry('a/b', ...reg('1')), ')'), /"\/"/],
  ['entry with NUL', nar('nix-archive-1', '(', 'type', 'directory', ...entry(s(Buffer.from('a\0b')), ...reg('1')), ')'), /NUL/],
  ['non-zero padding', (() => { const b = nar('nix-archive-1', ...reg('x')); b[b.length - 16 - 1] = 1; return b; })(), /padding/],
  ['executable marker with a value', nar('nix-archive-1', '(', 'type', 'regular', 'executable', 'yes', 'contents', 'x', ')'), /executable marker/],
  ['entry name too long', nar('nix-archive-1', '(', 'type', 'directory', ...entry('x'.repeat(300), ...reg('1')), ')'), /at most 255/],
];

describe('malformed NARs: refused by the reader and by nix-store --restore', () => {
  for (const [what, bytes, re] of BAD) {
    it(what, async () => {
      const sink: NarSink = { directoryStart() {}, directoryEnd() {}, async file() {}, symlink() {} };
      await assert.rejects(readNar(inChunks(bytes, 3), sink), (err: Error) => {
        assert.ok(err instanceof NarError, `${err.name}: ${err.message}`);
        assert.match(err.message, re);
        return true;
      });
      const dest = join(tmp, `restore-${what.replace(/\W+/g, '-')}`);
      const r = await run('nix-store', ['--restore', dest], bytes);
      assert.notEqual(r.code, 0, `nix-store --restore accepted it`);
    });
  }
});

// Nix 2.8's `nix-store --restore` lets these two through (it restores
// entries in any order and stops reading after the root); a NAR Nix writes
// never has them, and they would give one path two different NAR hashes.
const STRICTER: [string, Buffer, RegExp][] = [
  ['trailing data', Buffer.concat([nar('nix-archive-1', ...reg('x')), Buffer.alloc(8)]), /trailing data/],
  ['entries out of order', nar('nix-archive-1', '(', 'type', 'directory', ...entry('b', ...reg('1')), ...entry('a', ...reg('2')), ')'), /not sorted/],
];

describe('malformed NARs refused by the reader, though Nix 2.8 restores them', () => {
  for (const [what, bytes, re] of STRICTER) {
    it(what, async () => {
      const sink: NarSink = { directoryStart() {}, directoryEnd() {}, async file() {}, symlink() {} };
      await assert.rejects(readNar(inChunks(bytes, 3), sink), (err: Error) => err instanceof NarError && re.test(err.message));
    });
  }
});
