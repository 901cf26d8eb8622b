// How a stored PathInfo looks to Nix: its store path, its narinfo (as a
// binary cache serves it, optionally signed on the fly) and the NAR URL
// that identifies it. Shared by the HTTP binary cache and the CLI.
import type { PathInfo } from './messages.js';
import type { PathInfoService } from './pathinfo-service.js';
import { rootStorePath } from './validate-pathinfo.js';
import { sameBytes } from '../castore/digest.js';
import { isCaHashType, validateContentAddress, type ContentAddress } from '../nix/hash.js';
import * as nixbase32 from '../nix/nixbase32.js';
import type { NarInfo } from '../nix/narinfo.js';
import { EXTENSION, type ServedCompression } from '../nix/compression-names.js';
import { fingerprint, isValidKeyName, SIGNATURE_LENGTH, type Signature } from '../nix/signature.js';
import { hashPart, isValidName, parseBasename, sortStorePaths, type StorePath } from '../nix/store-path.js';

/** A PathInfo that has what Nix needs (NAR hash and size). */
export interface NixPathInfo {
  info: PathInfo;
  storePath: StorePath;
  narSha256: Uint8Array;
  narSize: number;
  /** Sorted (nixbase32 order), without duplicates. */
  references: StorePath[];
}

export class MissingNarInfoError extends Error {
  override name = 'MissingNarInfoError';
}

/** Interprets a stored PathInfo; throws if it lacks NAR metadata or is malformed. */
export function nixPathInfo(info: PathInfo): NixPathInfo {
  const storePath = rootStorePath(info.node);
  const ni = info.narinfo;
  if (!ni || ni.narSha256.length !== 32) throw new MissingNarInfoError('the stored PathInfo has no NAR hash');
  return {
    info,
    storePath,
    narSha256: ni.narSha256,
    narSize: ni.narSize,
    references: sortStorePaths(ni.referenceNames.map(parseBasename)),
  };
}

/**
 * The PathInfo of `sp`, or undefined when the store has none — also when it
 * has one for the same hash but under another name.
 */
export async function lookupStorePath(pathInfos: PathInfoService, sp: StorePath): Promise<PathInfo | undefined> {
  const info = await pathInfos.get(sp.digest);
  if (!info?.node) return undefined;
  const stored = rootStorePath(info.node);
  return sameBytes(stored.digest, sp.digest) && stored.name === sp.name ? info : undefined;
}

/** `nar/<store hash>-<nixbase32 NAR sha256>.nar`: names the path and the exact NAR. */
export function narUrl(storePath: StorePath, narSha256: Uint8Array): string {
  return `nar/${hashPart(storePath)}-${nixbase32.encode(narSha256)}.nar`;
}

/** Stored content address in narinfo form, or undefined if absent or unusable (e.g. copy-era records). */
export function contentAddressOf(info: PathInfo): ContentAddress | undefined {
  const ca = info.narinfo?.ca;
  if (!ca || !isCaHashType(ca.type)) return undefined;
  const typed: ContentAddress = { type: ca.type, digest: ca.digest };
  try {
    validateContentAddress(typed);
  } catch {
    return undefined;
  }
  return typed;
}

/** Stored signatures that can appear in narinfo text (valid key name, 64 bytes). */
export function usableSignatures(info: PathInfo): Signature[] {
  return (info.narinfo?.signatures ?? []).filter((s) => isValidKeyName(s.name) && s.data.length === SIGNATURE_LENGTH);
}

export function fingerprintOf(p: NixPathInfo): string {
  return fingerprint(p.storePath, p.narSha256, p.narSize, p.references);
}

/**
 * The narinfo a binary cache serves for `p`: the NAR at narUrl() (plus
 * `.zst`/`.xz` when compressed on the fly; uncompressed, FileHash/FileSize
 * = NarHash/NarSize, compressed they are unknown and left out), stored
 * signatures whose names are valid, and — when given — the serving daemon's
 * own signature over the fingerprint (replacing a stored one of the same
 * name; narinfo-signer.ts gives it only to content it checked).
 */
export function narInfoOf(p: NixPathInfo, own?: Signature, compression: ServedCompression = 'none'): NarInfo {
  const ni = p.info.narinfo!;
  let signatures = usableSignatures(p.info);
  if (own) {
    signatures = signatures.filter((s) => s.name !== own.name);
    signatures.push(own);
  }
  const ca = contentAddressOf(p.info);
  const deriver = ni.deriver;
  return {
    storePath: p.storePath,
    url: narUrl(p.storePath, p.narSha256) + EXTENSION[compression],
    compression,
    // Uncompressed: the file at `url` is the NAR itself. Nix shows these as
    // the download size.
    ...(compression === 'none' && { fileHash: p.narSha256, fileSize: p.narSize }),
    narHash: p.narSha256,
    narSize: p.narSize,
    references: p.references,
    ...(deriver && deriver.digest.length === 20 && isValidName(deriver.name) && { deriver: { digest: deriver.digest, name: deriver.name } }),
    signatures,
    ...(ca && { ca }),
  };
}
