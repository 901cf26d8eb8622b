// A PathInfo Put names references its uploader found in the store (copy
// skips what the store has). If a collection deleted one of them since,
// storing the PathInfo would leave a closure the store cannot serve whole:
// the backends refuse it with this error, and the retry uploads the
// reference first (copy and the post-build hook do so by themselves).
import type { PathInfo } from './messages.js';
import { CastoreError } from '../castore/errors.js';
import { sameBytes } from '../castore/digest.js';
import { encode as nix32 } from '../nix/nixbase32.js';

/** The references a collection could have taken from under a Put: all but the path itself (it is being stored). */
export function foreignReferences(info: PathInfo, self: Uint8Array): Uint8Array[] {
  return info.references.filter((r) => !sameBytes(r, self));
}

/** FAILED_PRECONDITION naming the collected reference (its basename from the PathInfo when given). */
export function collectedReferenceError(info: PathInfo, ref: Uint8Array): CastoreError {
  const i = info.references.findIndex((r) => sameBytes(r, ref));
  const name = info.narinfo?.referenceNames[i] ?? `${nix32(ref)}-…`;
  return new CastoreError('precondition', `reference ${name} was garbage-collected; upload it before the PathInfo`);
}
