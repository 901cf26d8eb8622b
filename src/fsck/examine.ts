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
