// A narinfo becomes a PathInfo: checked against the NAR that was received
// for it (NarHash, NarSize), its references (all in the store), and, when
// the operator names trusted keys, its signatures. Only then is it
// published. Shared by the HTTP upload and `import`.
import type { Store } from '../store/store.js';
import type { PathInfo } from '../store/messages.js';
import { lookupStorePath } from '../store/nix-view.js';
import type { Node } from '../castore/messages.js';
import { sameBytes } from '../castore/digest.js';
import type { NarInfo } from '../nix/narinfo.js';
import { formatNix32 } from '../nix/hash.js';
import { absolute, basename, storePathsEqual, type StorePath } from '../nix/store-path.js';
import { fingerprint, verifyAny, type PublicKey } from '../nix/signature.js';

/** Why a narinfo is refused; `status` is the HTTP status an upload gets. */
export class PublishError extends Error {
  override name = 'PublishError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface NarContent {
  root: Node;
  narSha256: Uint8Array;
  narSize: number;
}

export type PublishResult = 'published' | 'present';

/** The stored PathInfo when `ni`'s path is already in the store with this NAR; throws 409 for another NAR. */
export async function alreadyPresent(store: Store, ni: NarInfo): Promise<boolean> {
  const existing = await lookupStorePath(store.pathInfos, ni.storePath);
  if (!existing) return false;
  const stored = existing.narinfo?.narSha256;
  if (stored && sameBytes(stored, ni.narHash)) return true;
  throw new PublishError(
    409,
    `${absolute(ni.storePath)} is already in the store with another NAR hash (${stored ? formatNix32(stored) : 'none'}); it is not replaced`,
  );
}

/** Throws PublishError unless every reference (other than the path itself) is in the store. */
export async function checkReferences(store: Store, ni: NarInfo): Promise<void> {
  const missing: StorePath[] = [];
  for (const r of ni.references) {
    if (storePathsEqual(r, ni.storePath)) continue;
    if (!(await lookupStorePath(store.pathInfos, r))) missing.push(r);
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).map(absolute).join(', ') + (missing.length > 5 ? ` and ${missing.length - 5} more` : '');
    throw new PublishError(400, `${absolute(ni.storePath)} refers to paths the store does not have: ${shown}; upload them first`);
  }
}

export function checkSignatures(ni: NarInfo, trusted: readonly PublicKey[]): void {
  if (trusted.length === 0) return;
  const fp = fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references);
  if (!verifyAny(fp, ni.signatures, trusted)) {
    throw new PublishError(
      403,
      `${absolute(ni.storePath)} carries no valid signature by a trusted upload key (${trusted.map((k) => k.name).join(', ')})`,
    );
  }
}

export function checkContent(ni: NarInfo, nar: NarContent): void {
  if (!sameBytes(nar.narSha256, ni.narHash)) {
    throw new PublishError(400, `the NAR of ${absolute(ni.storePath)} hashes to ${formatNix32(nar.narSha256)}, its narinfo says NarHash ${formatNix32(ni.narHash)}`);
  }
  if (nar.narSize !== ni.narSize) {
    throw new PublishError(400, `the NAR of ${absolute(ni.storePath)} is ${nar.narSize} bytes, its narinfo says NarSize ${ni.narSize}`);
  }
}

export function pathInfoOf(ni: NarInfo, nar: NarContent): PathInfo {
  return {
    node: { ...nar.root, name: Buffer.from(basename(ni.storePath)) },
    references: ni.references.map((r) => r.digest),
    narinfo: {
      narSize: ni.narSize,
      narSha256: ni.narHash,
      signatures: ni.signatures,
      referenceNames: ni.references.map(basename),
      ...(ni.deriver && { deriver: ni.deriver }),
      ...(ni.ca && { ca: ni.ca }),
    },
  };
}

/** All checks, then the PathInfo is stored. */
export async function publish(store: Store, ni: NarInfo, nar: NarContent, trusted: readonly PublicKey[] = []): Promise<PublishResult> {
  checkContent(ni, nar);
  checkSignatures(ni, trusted);
  if (await alreadyPresent(store, ni)) return 'present';
  await checkReferences(store, ni);
  await store.pathInfos.put(pathInfoOf(ni, nar));
  return 'published';
}
