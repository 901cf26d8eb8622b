// The daemon's binary-cache flags beyond --http: compression of served NARs
// and uploads from `nix copy --to`.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../util/usage.js';
import { LEVELS, SERVED_COMPRESSIONS, type ServedCompression } from '../nix/compression-names.js';
import { parsePublicKey, type PublicKey } from '../nix/signature.js';
import { openRealisations, openStaging } from '../cache/open-staging.js';
import type { HttpCacheOptions } from '../server/http-cache.js';

export const CACHE_FLAGS = {
  compression: { type: 'string' },
  'compression-level': { type: 'string' },
  'trusted-upload-keys': { type: 'string', multiple: true },
  'upload-staging': { type: 'string' },
  'http-public-reads': { type: 'boolean' },
} as const;

export const CACHE_HELP = `      --compression KIND   zstd (default), xz or none: what narinfos point at.
                           NARs are compressed while they are sent; every
                           form (.nar, .nar.zst, .nar.xz) stays available.
      --compression-level N
                           zstd 1-19 (default ${LEVELS.zstd.default}), xz 1-9 (default ${LEVELS.xz.default}; xz is
                           slow to compress, prefer zstd).
      --http-public-reads  with --auth-token-file, reads of the binary cache
                           (GET, HEAD) need no token; uploads still do. For
                           a team cache: machines substitute without a
                           netrc, only pushers hold the token. (gRPC reads
                           never need it.)

Uploads ('nix copy --to http://…'): PUT of nix-cache-info, nar/…(.xz, .zst,
.bz2 or none) and <hash>.narinfo. A NAR is ingested into the castore as it
arrives and staged; its narinfo publishes it once NarHash, NarSize and the
references check out. Realisations of content-addressed derivations
(realisations/….doi, ca-derivations) are kept and served while their
output is in the store. Refused with 403 by --read-only, and by a daemon with
--sign-key-file but no --auth-token-file (it would sign anyone's uploads).
      --trusted-upload-keys KEY
                           a narinfo (and a realisation) must carry a valid
                           signature by one of these public keys
                           (name:base64; repeatable, or space-separated);
                           else 403.
      --upload-staging DIR where received NARs wait for their narinfo, with
                           realisations in DIR/realisations (default:
                           DATA/staged-nars and DATA/realisations for
                           --data, the store's PostgreSQL for s3://…, else
                           $XDG_STATE_HOME/nix-castore/staged-nars).`;

type CacheValues = {
  compression?: string;
  'compression-level'?: string;
  'trusted-upload-keys'?: string[];
  'upload-staging'?: string;
  'http-public-reads'?: boolean;
};

/** HttpCacheOptions from the flags (undefined fields for those not given). */
export async function cacheOptions(values: CacheValues, pathInfoAddr: string, readOnly: boolean): Promise<Partial<HttpCacheOptions>> {
  const c = values.compression ?? 'zstd';
  if (!(SERVED_COMPRESSIONS as readonly string[]).includes(c)) {
    throw new UsageError(`--compression takes ${SERVED_COMPRESSIONS.join(', ')}; got ${JSON.stringify(c)}`);
  }
  const compression = c as ServedCompression;
  let compressionLevel: number | undefined;
  if (values['compression-level'] !== undefined) {
    const l = LEVELS[compression];
    const n = Number(values['compression-level']);
    if (compression === 'none') throw new UsageError('--compression-level: --compression none takes no level');
    if (!Number.isInteger(n) || n < l.min || n > l.max) {
      throw new UsageError(`--compression-level for ${compression} goes from ${l.min} to ${l.max}; got ${JSON.stringify(values['compression-level'])}`);
    }
    compressionLevel = n;
  }
  const trustedKeys: PublicKey[] = [];
  for (const v of values['trusted-upload-keys'] ?? []) {
    for (const k of v.split(/\s+/).filter(Boolean)) trustedKeys.push(await publicKey(k));
  }
  if (readOnly && values['upload-staging'] !== undefined) throw new UsageError('--upload-staging: a --read-only daemon takes no uploads');
  return {
    compression,
    compressionLevel,
    readOnly,
    publicReads: values['http-public-reads'] === true,
    uploads: readOnly ? undefined : { staging: openStaging(pathInfoAddr, values['upload-staging']), trustedKeys },
    realisations: openRealisations(pathInfoAddr, values['upload-staging']),
  };
}

/** A public key given as text, or the name of a file holding one. */
async function publicKey(k: string): Promise<PublicKey> {
  try {
    return parsePublicKey(k);
  } catch (err) {
    if (!k.includes('/')) throw new UsageError(`--trusted-upload-keys: ${JSON.stringify(k)}: ${(err as Error).message}`);
  }
  try {
    return parsePublicKey((await readFile(k, 'utf8')).trim());
  } catch (err) {
    throw new UsageError(`--trusted-upload-keys: ${k}: ${(err as Error).message}`);
  }
}
