// PathInfo validation of store.md §3.3 (tvix HEAD rules, the stricter era).
import type { PathInfo } from './messages.js';
import type { Node } from '../castore/messages.js';
import { nameProblem, nodeContentProblem, showName } from '../castore/directory.js';
import { invalid } from '../castore/errors.js';
import { parseBasename, type StorePath } from '../nix/store-path.js';
import { caDigestLength, isCaHashType } from '../nix/hash.js';
import { sameBytes } from '../castore/digest.js';

export const STORE_DIGEST_LEN = 20;

function fail(reason: string): never {
  throw invalid(`Invalid path info: ${reason}`);
}

function tryParse(name: string, what: string): StorePath {
  try {
    return parseBasename(name);
  } catch (err) {
    fail(`${what} ${JSON.stringify(name)} is not a store path basename: ${(err as Error).message}`);
  }
}

/** The store path a root node names; throws an `invalid` error if it names none. */
export function rootStorePath(node: Node | undefined): StorePath {
  if (!node) fail('node is not set');
  const problem = nameProblem(node.name) ?? nodeContentProblem(node);
  if (problem) fail(`invalid root node ${showName(node.name)}: ${problem}`);
  return tryParse(Buffer.from(node.name).toString('utf8'), 'root node name');
}

/** Validates and returns the store path the PathInfo is keyed by. */
export function validatePathInfo(info: PathInfo): StorePath {
  const sp = rootStorePath(info.node);
  const ni = info.narinfo;
  if (!ni) fail('The narinfo field is missing');
  info.references.forEach((r, i) => {
    if (r.length !== STORE_DIGEST_LEN) fail(`reference ${i} has invalid digest length ${r.length}`);
  });
  if (ni.referenceNames.length !== info.references.length) {
    fail(`${info.references.length} references but ${ni.referenceNames.length} reference_names`);
  }
  ni.referenceNames.forEach((name, i) => {
    const ref = tryParse(name, `reference_names[${i}]`);
    if (!sameBytes(ref.digest, info.references[i])) {
      fail(`reference_names[${i}] ${JSON.stringify(name)} does not match references[${i}]`);
    }
  });
  if (ni.narSha256.length !== 32) fail(`nar_sha256 has invalid length ${ni.narSha256.length}`);
  if (ni.deriver) {
    if (ni.deriver.digest.length !== STORE_DIGEST_LEN) fail('deriver has invalid digest length');
    tryParse(`${'0'.repeat(32)}-${ni.deriver.name}`, 'deriver name');
  }
  ni.signatures.forEach((s, i) => {
    if (s.data.length !== 64) fail(`signature ${i} (${s.name}) has invalid length ${s.data.length}`);
  });
  if (ni.ca) {
    if (!isCaHashType(ni.ca.type)) fail(`unknown ca type ${ni.ca.type}`);
    const want = caDigestLength(ni.ca.type);
    if (ni.ca.digest.length !== want) fail(`ca digest has length ${ni.ca.digest.length}, expected ${want}`);
  }
  return sp;
}
