// Checks of single stored objects, shared by both checkers: a Directory's
// or PathInfo's bytes, a directory's two sizes, a PathInfo's NAR.
import { blake3, b3Hex } from '../castore/digest.js';
import { readDirectory, type Directory } from '../castore/messages.js';
import { directorySize, encodeDirectory, validateDirectory } from '../castore/directory.js';
import { PathInfoCodec, type PathInfo } from '../store/messages.js';
import { validatePathInfo } from '../store/validate-pathinfo.js';
import { calculateNar, type Castore } from '../store/render-nar.js';
import { absolute } from '../nix/store-path.js';
import { formatNix32 } from '../nix/hash.js';
import { message, type FsckCounts } from './report.js';

export type Sizes = [head: number, legacy: number];
/** What fsck knows about a directory as a child: its sizes, or why it cannot be used. */
export type ChildState = Sizes | 'missing' | 'corrupt';

/** Renders the NAR of `info` and compares it with its narinfo: what is wrong, or undefined. */
export async function narMismatch(info: PathInfo, castore: Castore, path: string, counts: Pick<FsckCounts, 'nars' | 'narBytes'>): Promise<string | undefined> {
  const ni = info.narinfo!;
  let got;
  try {
    // Rendered at most up to the NarSize stated: a DAG bomb ends with an error.
    got = await calculateNar(info.node!, castore, { maxBytes: ni.narSize });
  } catch (err) {
    return `${path}: the NAR cannot be rendered: ${message(err)}`;
  }
  counts.nars++;
  counts.narBytes += got.narSize;
  if (got.narSize === ni.narSize && got.narSha256.equals(Buffer.from(ni.narSha256))) return undefined;
  return (
    `${path}: the NAR renders to ${got.narSize} bytes, ${formatNix32(got.narSha256)}; ` +
    `the narinfo records ${ni.narSize} bytes, ${formatNix32(ni.narSha256)}`
  );
}

export function sizesOf(dir: Directory): Sizes {
  return [directorySize(dir, 'head'), directorySize(dir, 'legacy')];
}

/**
 * A stored directory's bytes, decoded, or what is wrong with them: they must
 * decode, hash to `hex` (the name they are stored under; `noun` says what
 * that is), validate and be canonically encoded.
 */
export function examineDirectory(hex: string, bytes: Buffer, noun = 'name'): { dir?: Directory; problem?: string } {
  let dir: Directory;
  try {
    dir = readDirectory(bytes);
  } catch (err) {
    return { problem: `does not decode as a Directory: ${message(err)}` };
  }
  const got = b3Hex(blake3(bytes));
  if (got !== hex) return { dir, problem: `content (${bytes.length} bytes) hashes to ${got}, not to its ${noun}` };
  try {
    validateDirectory(dir);
  } catch (err) {
    return { dir, problem: `invalid Directory: ${message(err)}` };
  }
  if (!encodeDirectory(dir).equals(bytes)) return { dir, problem: 'not in the canonical encoding' };
  return { dir };
}

/** A stored PathInfo decoded and validated, with the key (hex store path digest) it belongs under; or what is wrong. */
export function examinePathInfo(bytes: Buffer): { info: PathInfo; path: string; key: string } | { problem: string } {
  let info: PathInfo;
  try {
    info = PathInfoCodec.decode(bytes);
  } catch (err) {
    return { problem: `does not decode as a PathInfo: ${message(err)}` };
  }
  try {
    const sp = validatePathInfo(info);
    return { info, path: absolute(sp), key: Buffer.from(sp.digest).toString('hex') };
  } catch (err) {
    return { problem: message(err) };
  }
}

/** A directory as the closure walk sees it: decoded, or why it cannot be used (undefined: missing). */
export type Examined = { dir?: Directory; problem?: string } | undefined;

/**
 * Why the directory closure under a root is not complete and sound, if it is
 * not. Every stored directory was already checked with its children and
 * blobs, so a closure can only be broken where a bad directory lies: it is
 * walked (a level per `load`, so the database answers in batches) only when
 * `badDirs` holds any.
 */
export async function closureProblem(
  digest: Uint8Array,
  size: number,
  state: ChildState,
  badDirs: ReadonlyMap<string, string>,
  load: (hexes: string[]) => Promise<Map<string, Examined>>,
): Promise<string | undefined> {
  const rootHex = b3Hex(digest);
  if (state === 'missing') return `root directory ${rootHex} is missing`;
  if (state === 'corrupt') return `root directory ${rootHex} is corrupt`;
  if (!state.includes(size)) return `root node says size ${size}, but ${rootHex} has size ${state[0]} (or ${state[1]} by the older formula)`;
  if (badDirs.size === 0) return undefined;
  const seen = new Set<string>([rootHex]);
  let level: { hex: string; at: string }[] = [{ hex: rootHex, at: '' }];
  let first: string | undefined;
  let bad = 0;
  while (level.length > 0) {
    const loaded = await load(level.filter((x) => !badDirs.has(x.hex)).map((x) => x.hex));
    const next: typeof level = [];
    for (const { hex, at } of level) {
      const where = at ? `at ${JSON.stringify(at)}` : 'at the root';
      const why = badDirs.get(hex);
      const d = why ? undefined : loaded.get(hex);
      if (why || !d || d.problem || !d.dir) {
        bad++;
        first ??= `directory ${hex} ${where}: ${why ?? (d ? d.problem : 'missing')}`;
        continue;
      }
      for (const c of d.dir.directories) {
        const h = b3Hex(c.digest);
        if (seen.has(h)) continue;
        seen.add(h);
        const name = Buffer.from(c.name).toString('latin1');
        next.push({ hex: h, at: at ? `${at}/${name}` : name });
      }
    }
    level = next;
  }
  if (!first) return undefined;
  return `directory closure incomplete: ${first}${bad > 1 ? ` (and ${bad - 1} more bad directories)` : ''}`;
}
