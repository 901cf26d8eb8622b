/**
 * narinfo text (store.md §6): rendering in tvix's field order and parsing
 * with tvix's rules.
 */
import { formatContentAddress, formatNix32, parseContentAddress, parseNarHash } from './hash.js';
import type { ContentAddress } from './hash.js';
import { absolute, basename, parseAbsolute, parseBasename } from './store-path.js';
import type { StorePath } from './store-path.js';
import { formatSignature, parseSignature } from './signature.js';
import type { Signature } from './signature.js';

export interface NarInfo {
  storePath: StorePath;
  /** Relative URL of the (compressed) NAR, e.g. `nar/<hash>.nar`. */
  url: string;
  /**
   * `none`, `xz`, `bzip2`, `zstd`, … Always rendered. When parsing, a missing
   * `Compression` line yields `bzip2` (Nix's default).
   */
  compression: string;
  /** SHA-256 of the file at `url` (32 bytes). */
  fileHash?: Uint8Array;
  fileSize?: number;
  /** SHA-256 of the uncompressed NAR (32 bytes). */
  narHash: Uint8Array;
  narSize: number;
  references: StorePath[];
  /**
   * The deriver **without** its `.drv` suffix (as in PathInfo, store.md §3.2):
   * `Deriver: <hash>-curl-7.82.0.drv` ⇔ `{ digest, name: 'curl-7.82.0' }`.
   */
  deriver?: StorePath;
  system?: string;
  signatures: Signature[];
  ca?: ContentAddress;
}

export class NarInfoError extends Error {
  override name = 'NarInfoError';
}

function decimal(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new NarInfoError(`invalid ${what} ${String(n)}: must be a non-negative integer`);
  return String(n);
}

function checkValue(v: string, what: string): string {
  if (/[\n\r]/.test(v)) throw new NarInfoError(`invalid ${what} ${JSON.stringify(v)}: must not contain line breaks`);
  return v;
}

/** Renders narinfo text; every line ends with `\n`. */
export function renderNarInfo(ni: NarInfo): string {
  const lines: string[] = [];
  lines.push(`StorePath: ${absolute(ni.storePath)}`);
  lines.push(`URL: ${checkValue(ni.url, 'URL')}`);
  lines.push(`Compression: ${checkValue(ni.compression, 'Compression')}`);
  if (ni.fileHash !== undefined) lines.push(`FileHash: ${formatNix32(ni.fileHash)}`);
  if (ni.fileSize !== undefined) lines.push(`FileSize: ${decimal(ni.fileSize, 'FileSize')}`);
  lines.push(`NarHash: ${formatNix32(ni.narHash)}`);
  lines.push(`NarSize: ${decimal(ni.narSize, 'NarSize')}`);
  lines.push(`References: ${ni.references.map(basename).join(' ')}`);
  if (ni.deriver !== undefined) lines.push(`Deriver: ${basename(ni.deriver)}.drv`);
  if (ni.system !== undefined) lines.push(`System: ${checkValue(ni.system, 'System')}`);
  for (const sig of ni.signatures) lines.push(`Sig: ${formatSignature(sig)}`);
  if (ni.ca !== undefined) lines.push(`CA: ${formatContentAddress(ni.ca)}`);
  return lines.map((l) => l + '\n').join('');
}

function parseSize(v: string, key: string): number {
  if (!/^[0-9]+$/.test(v)) throw new NarInfoError(`invalid ${key} ${JSON.stringify(v)}: expected a decimal number`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new NarInfoError(`invalid ${key} ${JSON.stringify(v)}: too large`);
  return n;
}

const REQUIRED = ['StorePath', 'URL', 'NarHash', 'NarSize', 'References'] as const;

/**
 * Parses narinfo text. Required: StorePath, URL, NarHash, NarSize,
 * References. Duplicate keys are errors except `Sig`; unknown keys are
 * ignored; blank lines are skipped.
 */
export function parseNarInfo(text: string): NarInfo {
  const seen = new Set<string>();
  const out: Partial<NarInfo> & { signatures: Signature[] } = { signatures: [] };

  const lines = text.split('\n');
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln];
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new NarInfoError(`narinfo line ${ln + 1}: expected "Key: value", got ${JSON.stringify(line)}`);
    const key = line.slice(0, colon);
    let value = line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    else if (value !== '') {
      throw new NarInfoError(`narinfo line ${ln + 1}: expected a space after "${key}:", got ${JSON.stringify(line)}`);
    }
    if (key !== 'Sig') {
      if (seen.has(key)) throw new NarInfoError(`narinfo line ${ln + 1}: duplicate key ${JSON.stringify(key)}`);
      seen.add(key);
    }
    try {
      switch (key) {
        case 'StorePath':
          out.storePath = parseAbsolute(value);
          break;
        case 'URL':
          out.url = value;
          break;
        case 'Compression':
          out.compression = value;
          break;
        case 'FileHash':
          out.fileHash = parseNarHash(value);
          break;
        case 'FileSize':
          out.fileSize = parseSize(value, key);
          break;
        case 'NarHash':
          out.narHash = parseNarHash(value);
          break;
        case 'NarSize':
          out.narSize = parseSize(value, key);
          break;
        case 'References':
          out.references = value.split(' ').filter((s) => s !== '').map(parseBasename);
          break;
        case 'Deriver': {
          if (!value.endsWith('.drv')) throw new Error(`Deriver ${JSON.stringify(value)} does not end in ".drv"`);
          out.deriver = parseBasename(value.slice(0, -4));
          break;
        }
        case 'System':
          out.system = value;
          break;
        case 'Sig':
          out.signatures.push(parseSignature(value));
          break;
        case 'CA':
          out.ca = parseContentAddress(value);
          break;
        default:
          break; // unknown keys are ignored
      }
    } catch (e) {
      if (e instanceof NarInfoError) throw e;
      throw new NarInfoError(`narinfo line ${ln + 1} (${key}): ${(e as Error).message}`);
    }
  }

  const missing = REQUIRED.filter((k) => !seen.has(k));
  if (missing.length > 0) throw new NarInfoError(`narinfo is missing required key(s): ${missing.join(', ')}`);
  return {
    storePath: out.storePath!,
    url: out.url!,
    compression: out.compression ?? 'bzip2',
    ...(out.fileHash !== undefined && { fileHash: out.fileHash }),
    ...(out.fileSize !== undefined && { fileSize: out.fileSize }),
    narHash: out.narHash!,
    narSize: out.narSize!,
    references: out.references!,
    ...(out.deriver !== undefined && { deriver: out.deriver }),
    ...(out.system !== undefined && { system: out.system }),
    signatures: out.signatures,
    ...(out.ca !== undefined && { ca: out.ca }),
  };
}
