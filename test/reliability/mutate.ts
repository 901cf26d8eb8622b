// Case generators for the wire fuzzer: valid Directory closures and
// PathInfos built from the spec fixtures and random parts, then mutated
// structurally (names, order, duplicates, digest lengths, sizes, targets,
// dropped and added entries, references, signatures, deriver, CA), in the
// stream (children left out, reordered, duplicated, an extra root), and at
// the byte level (bit flips, truncation, insertions, unknown fields,
// non-minimal varints). Whether a case should be accepted is for the
// oracle to say, not for the generator.
import type { Rng } from '../helpers/seeded-random.js';
import {
  directoryDigest,
  encodeDirectory,
  encodePathInfo,
  nix32Encode,
  nix32Decode20,
  sizes,
  Enc,
  type Looseness,
  type ODirectory,
  type ODirNode,
  type OFileNode,
  type OPathInfo,
  type ONode,
} from './oracle.js';
import { blake3 } from '../../src/castore/digest.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
export const EMPTY_BLOB = Buffer.from(blake3(Buffer.alloc(0)));

const empty = (): ODirectory => ({ directories: [], files: [], symlinks: [] });
const cloneDir = (d: ODirectory): ODirectory => ({
  directories: d.directories.map((n) => ({ ...n })),
  files: d.files.map((n) => ({ ...n })),
  symlinks: d.symlinks.map((n) => ({ ...n })),
});

export interface Closure {
  /** Leaves first; the last one is the root. */
  dirs: ODirectory[];
}

function child(name: string, c: ODirectory, legacy = false): ODirNode {
  const s = sizes(c);
  return { name: b(name), digest: directoryDigest(c), size: legacy ? s.legacy : s.head };
}

/** The castore.md §5 fixtures as closures (both size formulas where they differ). */
export function fixtureClosures(): { A: ODirectory; KEEP: ODirectory; COMPLICATED: ODirectory; all: Closure[] } {
  const A = empty();
  const KEEP: ODirectory = { ...empty(), files: [{ name: b('.keep'), digest: EMPTY_BLOB, size: 0, executable: false }] };
  const complicated = (legacy: boolean): ODirectory => ({
    directories: [child('keep', KEEP, legacy)],
    files: [{ name: b('.keep'), digest: EMPTY_BLOB, size: 0, executable: false }],
    symlinks: [{ name: b('aa'), target: b('/nix/store/somewhereelse') }],
  });
  const B: ODirectory = { ...empty(), directories: [child('a', A)] };
  const C: ODirectory = { ...empty(), directories: [child('a', A), child("a'", A)] };
  const D: ODirectory = { ...empty(), directories: [child('a', A), child('b', B)] };
  const COMPLICATED = complicated(false);
  return {
    A,
    KEEP,
    COMPLICATED,
    all: [
      { dirs: [A] },
      { dirs: [KEEP] },
      { dirs: [KEEP, COMPLICATED] },
      { dirs: [KEEP, complicated(true)] },
      { dirs: [A, B] },
      { dirs: [A, C] },
      { dirs: [A, B, D] },
    ],
  };
}

// ------------------------------------------------------------ random parts

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-_?=.';

export function randomStoreName(r: Rng): string {
  const len = r.chance(0.05) ? 211 : r.range(1, 24);
  let s = '';
  for (let i = 0; i < len; i++) s += r.pick([...NAME_CHARS]);
  return s;
}

/** A valid castore entry name: mostly ASCII, sometimes arbitrary bytes or 255 long. */
function randomEntryName(r: Rng): Buffer {
  if (r.chance(0.05)) return Buffer.alloc(255, 0x61 + r.int(26));
  const len = r.range(1, 12);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) {
    let c = r.chance(0.8) ? NAME_CHARS.charCodeAt(r.int(NAME_CHARS.length)) : r.range(1, 255);
    if (c === 0x2f) c = 0x5f;
    out[i] = c;
  }
  if (out.equals(b('.')) || out.equals(b('..'))) return b('dot');
  return out;
}

/** A random valid directory over the fixtures (returned with its closure). */
export function randomClosure(r: Rng, fx: ReturnType<typeof fixtureClosures>): Closure {
  const used = new Set<string>();
  const fresh = () => {
    for (;;) {
      const n = randomEntryName(r);
      if (!used.has(n.toString('hex'))) {
        used.add(n.toString('hex'));
        return n;
      }
    }
  };
  const sub = r.pick(fx.all);
  const subRoot = sub.dirs.at(-1)!;
  const d = empty();
  const nDirs = r.range(0, 2);
  for (let i = 0; i < nDirs; i++) {
    const s = sizes(subRoot);
    d.directories.push({ name: fresh(), digest: directoryDigest(subRoot), size: r.chance(0.5) ? s.head : s.legacy });
  }
  for (let i = r.range(0, 4); i > 0; i--) {
    d.files.push({ name: fresh(), digest: r.chance(0.3) ? EMPTY_BLOB : r.bytes(32), size: r.chance(0.3) ? 0 : r.int(1 << 20), executable: r.chance(0.3) });
  }
  for (let i = r.range(0, 3); i > 0; i--) d.symlinks.push({ name: fresh(), target: r.chance(0.5) ? b('/nix/store/x') : Buffer.from(r.bytes(r.range(1, 30)).map((c) => c || 1)) });
  for (const list of [d.directories, d.files, d.symlinks] as { name: Buffer }[][]) list.sort((x, y) => Buffer.compare(x.name, y.name));
  return { dirs: nDirs > 0 ? [...sub.dirs, d] : [d] };
}

// -------------------------------------------------------- encoding tweaks

function unknownField(r: Rng, minField: number): Buffer {
  const e = new Enc();
  const field = r.chance(0.5) ? r.range(minField, minField + 20) : r.range(minField, 100_000);
  const wt = r.pick([0, 1, 2, 5]);
  e.tag(field, wt);
  if (wt === 0) e.varint(r.chance(0.5) ? r.int(300) : r.int(2 ** 40));
  else if (wt === 1) e.raw(r.bytes(8));
  else if (wt === 5) e.raw(r.bytes(4));
  else {
    const v = r.bytes(r.range(0, 16));
    e.varint(v.length).raw(v);
  }
  return e.finish();
}

/** Equivalent, non-canonical encodings: padded varints and unknown fields in every message. */
export function looseness(r: Rng, minUnknownField: number): Looseness {
  const pad = r.chance(0.5);
  const unknown = r.chance(0.7);
  return {
    pad: pad ? () => (r.chance(0.2) ? r.range(1, 3) : 0) : undefined,
    unknown: unknown ? () => (r.chance(0.3) ? unknownField(r, minUnknownField) : undefined) : undefined,
  };
}

/** Byte-level damage. */
export function damage(r: Rng, buf: Buffer): Buffer {
  const op = r.int(7);
  const pos = buf.length ? r.int(buf.length) : 0;
  switch (op) {
    case 0: {
      if (!buf.length) return r.bytes(r.range(1, 4));
      const c = Buffer.from(buf);
      c[pos] ^= 1 << r.int(8);
      return c;
    }
    case 1: {
      if (!buf.length) return r.bytes(1);
      const c = Buffer.from(buf);
      c[pos] = r.u32() & 0xff;
      return c;
    }
    case 2:
      return buf.subarray(0, pos);
    case 3:
      return Buffer.concat([buf.subarray(0, pos), r.bytes(r.range(1, 4)), buf.subarray(pos)]);
    case 4:
      return Buffer.concat([buf.subarray(0, pos), buf.subarray(Math.min(buf.length, pos + r.range(1, 4)))]);
    case 5:
      return Buffer.concat([buf, r.bytes(r.range(1, 6))]);
    default:
      return Buffer.concat([buf, unknownField(r, 4)]);
  }
}

// -------------------------------------------------- Directory Put streams

export interface DirCase {
  label: string[];
  msgs: Buffer[];
}

const BAD_NAMES = ['', '.', '..', 'a/b', '/', 'a\0b', '\0', 'x'.repeat(256)].map(b);
const TARGETS = ['', 'a\0b', 'x'.repeat(4095), 'x'.repeat(4096), '\0'].map(b);

export function directoryCase(r: Rng, fx: ReturnType<typeof fixtureClosures>): DirCase {
  const base = r.chance(0.5) ? r.pick(fx.all) : randomClosure(r, fx);
  const target = cloneDir(base.dirs.at(-1)!);
  let children = base.dirs.slice(0, -1).map((d) => encodeDirectory(d));
  const label: string[] = [];
  const lists = () => ([['directories', target.directories], ['files', target.files], ['symlinks', target.symlinks]] as [string, { name: Buffer }[]][]).filter(([, l]) => l.length > 0);
  const anyEntry = () => {
    const ls = lists();
    if (!ls.length) return undefined;
    const [name, l] = r.pick(ls);
    return { list: name, entries: l, i: r.int(l.length) };
  };
  let streamOp: (() => void) | undefined;
  const mutations = r.chance(0.15) ? 0 : r.range(1, 3);
  for (let m = 0; m < mutations; m++) {
    const op = r.int(17);
    const e = anyEntry();
    switch (op) {
      case 0:
        if (e) (e.entries[e.i].name = r.pick(BAD_NAMES)), label.push(`bad name in ${e.list}`);
        break;
      case 1:
        if (e) (e.entries[e.i].name = r.chance(0.5) ? randomEntryName(r) : r.bytes(r.range(1, 6))), label.push(`random name in ${e.list}`);
        break;
      case 2:
        if (e && e.entries.length >= 2) {
          const j = e.i === 0 ? 1 : e.i - 1;
          [e.entries[e.i], e.entries[j]] = [e.entries[j], e.entries[e.i]];
          label.push(`unsorted ${e.list}`);
        }
        break;
      case 3:
        if (e) e.entries.splice(e.i, 0, { ...e.entries[e.i] }), label.push(`duplicate entry in ${e.list}`);
        break;
      case 4: {
        const f = anyEntry();
        if (e && f && e.list !== f.list) (f.entries[f.i].name = Buffer.from(e.entries[e.i].name)), label.push(`name shared by ${e.list} and ${f.list}`);
        break;
      }
      case 5: {
        const l = r.chance(0.5) && target.directories.length ? target.directories : target.files;
        if (l.length) (l[r.int(l.length)].digest = r.bytes(r.pick([0, 1, 31, 33, 64]))), label.push('digest length');
        break;
      }
      case 6: {
        const l = r.chance(0.6) && target.directories.length ? target.directories : target.files;
        if (l.length) (l[r.int(l.length)].digest = r.bytes(32)), label.push('random digest');
        break;
      }
      case 7:
        if (target.directories.length) {
          const n = r.pick(target.directories);
          n.size = r.pick([0, n.size + 1, Math.max(0, n.size - 1), n.size * 2, Math.floor(n.size / 2), 2 ** 53 - 1, 2 ** 52, r.int(1000)]);
          label.push('directory size');
        } else if (target.files.length) (r.pick(target.files).size = r.int(2 ** 40)), label.push('file size');
        break;
      case 8:
        if (target.symlinks.length) (r.pick(target.symlinks).target = r.chance(0.7) ? r.pick(TARGETS) : r.bytes(r.range(1, 8))), label.push('symlink target');
        break;
      case 9:
        if (e) e.entries.splice(e.i, 1), label.push(`dropped from ${e.list}`);
        break;
      case 10: {
        const name = randomEntryName(r);
        if (r.chance(0.5)) target.files.splice(r.int(target.files.length + 1), 0, { name, digest: r.bytes(32), size: r.int(100), executable: false });
        else target.symlinks.splice(r.int(target.symlinks.length + 1), 0, { name, target: b('t') });
        label.push('added entry');
        break;
      }
      case 11:
        if (target.files.length) ((f: OFileNode) => (f.executable = !f.executable))(r.pick(target.files)), label.push('executable');
        break;
      case 12:
        streamOp = () => (children = []);
        label.push('children left out');
        break;
      case 13:
        streamOp = () => children.reverse();
        label.push('children reversed');
        break;
      case 14:
        if (children.length) children.splice(r.int(children.length + 1), 0, r.pick(children)), label.push('duplicate message');
        break;
      case 15: {
        // An unrelated second root (a directory with just a symlink).
        const extra: ODirectory = { ...empty(), symlinks: [{ name: b('extra'), target: Buffer.from(r.bytes(4).map((c) => c || 1)) }] };
        children.splice(r.int(children.length + 1), 0, encodeDirectory(extra));
        label.push('extra root');
        break;
      }
      default:
        if (r.chance(0.1)) (streamOp = () => (children = [])), label.push('empty stream');
        break;
    }
  }
  streamOp?.();
  let raw = encodeDirectory(target, r.chance(0.25) ? looseness(r, 5) : undefined);
  if (r.chance(0.25)) {
    raw = damage(r, raw);
    label.push('damaged bytes');
  }
  const msgs = label.includes('empty stream') ? [] : [...children, raw];
  if (label.includes('children reversed')) msgs.reverse();
  return { label, msgs };
}

// ---------------------------------------------------------- PathInfo cases

export interface Present {
  /** A file node whose blob is in the store. */
  files: { digest: Buffer; size: number }[];
  /** Directory nodes whose whole closure (and blobs) is in the store. */
  dirs: { digest: Buffer; size: number }[];
}

export interface PathInfoCase {
  label: string[];
  raw: Buffer;
}

const basename = (digest: Buffer, name: string): Buffer => b(`${nix32Encode(digest)}-${name}`);
const CA_LEN = [32, 20, 64, 16, 32, 20, 16, 32, 64];

export function validPathInfo(r: Rng, present: Present): OPathInfo {
  const name = basename(r.bytes(20), r.chance(0.1) ? `.${randomStoreName(r).slice(1)}` : randomStoreName(r));
  const kind = r.int(3);
  let node: ONode;
  if (kind === 0) node = { type: 'file', name, ...r.pick(present.files), executable: r.chance(0.3) };
  else if (kind === 1) node = { type: 'directory', name, ...r.pick(present.dirs) };
  else node = { type: 'symlink', name, target: r.chance(0.5) ? b('/nix/store/somewhere') : Buffer.from(r.bytes(r.range(1, 40)).map((c) => c || 1)) };
  const references: Buffer[] = [];
  const referenceNames: Buffer[] = [];
  for (let i = r.range(0, 3); i > 0; i--) {
    const d = r.bytes(20);
    references.push(d);
    referenceNames.push(basename(d, randomStoreName(r)));
  }
  if (r.chance(0.2)) {
    // A self-reference.
    references.push(nix32Decode20(name.subarray(0, 32))!);
    referenceNames.push(name);
  }
  return {
    node,
    references,
    narinfo: {
      narSize: r.int(2 ** 40),
      narSha256: r.bytes(32),
      signatures: Array.from({ length: r.range(0, 2) }, () => ({ name: b(r.chance(0.5) ? 'cache.example.com-1' : randomStoreName(r)), data: r.bytes(64) })),
      referenceNames,
      deriver: r.chance(0.5) ? { name: b(randomStoreName(r)), digest: r.bytes(20) } : undefined,
      ca: r.chance(0.3) ? ((t) => ({ type: t, digest: r.bytes(CA_LEN[t]) }))(r.int(9)) : undefined,
    },
  };
}

const BAD_ROOT_NAMES = (n: Buffer): Buffer[] => {
  const s = n.toString('latin1');
  const hash = s.slice(0, 32);
  const rest = s.slice(33);
  return [
    `${r1(hash, 'e')}-${rest}`,
    `${r1(hash, 'E')}-${rest}`,
    `${r1(hash, 'u')}-${rest}`,
    `${hash}_${rest}`,
    `${hash}-`,
    `${hash}-a b`,
    `${hash}-a/b`,
    `${hash}-a@b`,
    `${hash}-\xff`,
    `${hash}-a\0`,
    `${hash}-${'x'.repeat(212)}`,
    `${hash}-${'x'.repeat(211)}`,
    `${hash}-.hidden`,
    `${hash.slice(1)}-${rest}`,
    `${hash}x-${rest}`,
    hash,
    '.',
    '..',
    '',
    'x'.repeat(256),
  ].map(b);
};
const r1 = (hash: string, c: string) => c + hash.slice(1);

export function pathInfoCase(r: Rng, present: Present): PathInfoCase {
  const p = validPathInfo(r, present);
  const ni = p.narinfo!;
  const label: string[] = [];
  const mutations = r.chance(0.2) ? 0 : r.range(1, 3);
  for (let m = 0; m < mutations; m++) {
    const n = p.node;
    switch (r.int(24)) {
      case 0:
        p.node = undefined;
        label.push('node unset');
        break;
      case 1:
        if (n && n.type !== 'symlink') {
          p.node = n.type === 'file' ? { type: 'directory', name: n.name, digest: n.digest, size: n.size } : { type: 'file', name: n.name, digest: n.digest, size: n.size, executable: false };
          label.push('node type swapped');
        }
        break;
      case 2:
      case 3:
        if (n) (n.name = r.pick(BAD_ROOT_NAMES(n.name))), label.push(`root name ${JSON.stringify(n.name.toString('latin1').slice(0, 50))}`);
        break;
      case 4:
        if (n && n.type !== 'symlink') (n.digest = r.bytes(r.pick([0, 31, 33]))), label.push('root digest length');
        else if (n) (n.target = r.pick(TARGETS)), label.push('root symlink target');
        break;
      case 5:
        if (n && n.type !== 'symlink') (n.digest = r.bytes(32)), label.push('root content missing');
        break;
      case 6:
        if (n && n.type !== 'symlink') (n.size = r.int(2 ** 40)), label.push('root size');
        break;
      case 7:
        p.narinfo = undefined;
        label.push('narinfo unset');
        break;
      case 8:
        ni.narSha256 = r.bytes(r.pick([0, 20, 31, 33, 64]));
        label.push('nar_sha256 length');
        break;
      case 9:
        if (p.references.length) p.references.pop(), label.push('reference dropped');
        else ni.referenceNames.push(basename(r.bytes(20), 'x')), label.push('reference name without reference');
        break;
      case 10: {
        const d = r.bytes(20);
        p.references.push(d);
        if (r.chance(0.5)) ni.referenceNames.push(basename(d, randomStoreName(r))), label.push('reference added');
        else label.push('reference without name');
        break;
      }
      case 11:
        if (p.references.length) {
          const i = r.int(p.references.length);
          p.references[i] = Buffer.from(p.references[i]);
          p.references[i][r.int(20)] ^= 1 << r.int(8);
          label.push('reference flipped');
        }
        break;
      case 12:
        if (p.references.length) {
          const i = r.int(p.references.length);
          p.references[i] = r.bytes(r.pick([0, 19, 21, 32]));
          label.push('reference length');
        }
        break;
      case 13:
        if (ni.referenceNames.length >= 2) [ni.referenceNames[0], ni.referenceNames[1]] = [ni.referenceNames[1], ni.referenceNames[0]];
        else if (ni.referenceNames.length) ni.referenceNames[0] = r.pick(BAD_ROOT_NAMES(ni.referenceNames[0]));
        label.push('reference names');
        break;
      case 14:
        if (ni.signatures.length) (r.pick(ni.signatures).data = r.bytes(r.pick([0, 32, 63, 65]))), label.push('signature length');
        break;
      case 15:
        ni.signatures.push({
          name: r.pick([r.bytes(r.range(1, 8)), b('\xef\xbb\xbfbom'), Buffer.from('ключ-1', 'utf8'), b('\xc3\x28'), b('\xed\xa0\x80'), b('')]),
          data: r.bytes(64),
        });
        label.push('signature name bytes');
        break;
      case 16:
        ni.deriver = ni.deriver ? undefined : { name: b(randomStoreName(r)), digest: r.bytes(20) };
        label.push('deriver toggled');
        break;
      case 17:
        ni.deriver = { name: b(randomStoreName(r)), digest: r.bytes(r.pick([0, 19, 21])) };
        label.push('deriver digest length');
        break;
      case 18:
        ni.deriver = { name: r.pick([b(''), b('a b'), b('x'.repeat(212)), b('foo.drv'), b('.drv'), r.bytes(r.range(1, 6))]), digest: r.bytes(20) };
        label.push('deriver name');
        break;
      case 19:
        ni.ca = ni.ca ? undefined : ((t) => ({ type: t, digest: r.bytes(CA_LEN[t]) }))(r.int(9));
        label.push('ca toggled');
        break;
      case 20:
        ni.ca = { type: r.pick([9, 10, 200, 2 ** 31, 2 ** 40]), digest: r.bytes(32) };
        label.push('ca type');
        break;
      case 21:
        ni.ca = { type: r.int(9), digest: r.bytes(r.pick([0, 16, 20, 32, 64])) };
        label.push('ca digest length');
        break;
      case 22:
        if (n && n.type === 'file') (n.executable = !n.executable), label.push('executable');
        break;
      default:
        if (n) (n.name = Buffer.concat([n.name.subarray(0, 33), r.bytes(r.range(1, 4))])), label.push('root name bytes');
        break;
    }
  }
  let raw = encodePathInfo(p, r.chance(0.25) ? looseness(r, 7) : undefined);
  if (r.chance(0.2)) {
    raw = damage(r, raw);
    label.push('damaged bytes');
  }
  return { label, raw };
}
