// Addresses of the scale-out backends:
//
//   s3://BUCKET[/PREFIX]?index=postgres://…[&endpoint=URL][&region=R]
//       blob bytes in an S3 bucket (packed; see s3-blob-service.ts), the blob
//       index in PostgreSQL. As a whole-store address (--store), directories
//       and PathInfos go to the same PostgreSQL database.
//       compression=zstd or none: how new blobs are stored (blob-codec.ts;
//       what is stored reads back either way); without it, the store's own
//       default (zstd for stores created with compression, none for older
//       ones: schema.ts). level=N the zstd level (default 1; 1-19, or
//       -7..-1 for faster and larger). timeout=SECONDS how long S3 may send
//       nothing in answer to a request (default 60) before it fails.
//   postgres://… or postgresql://…
//       directories or PathInfos in PostgreSQL (DIRECTORY_SERVICE_ADDR,
//       PATH_INFO_SERVICE_ADDR).
//
// Credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID…,
// AWS_PROFILE, instance roles); PostgreSQL ones from the URL or PG* env vars.
import { invalid } from '../castore/errors.js';
import { DEFAULT_LEVEL, type Compression } from './blob-codec.js';

export interface S3Location {
  bucket: string;
  /** Key prefix, '' or ending in '/'. */
  prefix: string;
  endpoint?: string;
  region?: string;
  /** Path-style URLs (bucket in the path): the default with a custom endpoint. */
  forcePathStyle: boolean;
  indexUrl: string;
  /** How new blobs are stored; undefined: the store's default (schema.ts). */
  compression?: Compression;
  /** `timeout=`: ms S3 may stay silent in answer to a request. */
  stallMs?: number;
}

const S3_HELP = 's3://BUCKET/PREFIX?index=postgres://USER@HOST:PORT/DB&endpoint=http://HOST:PORT&region=REGION';

export const isPostgresAddr = (addr: string): boolean => /^postgres(ql)?:\/\//.test(addr);
export const isS3Addr = (addr: string): boolean => addr.startsWith('s3://');

export function parseS3Addr(addr: string): S3Location {
  let u: URL;
  try {
    u = new URL(addr);
  } catch {
    throw invalid(`invalid S3 address ${JSON.stringify(addr)}; expected ${S3_HELP}`);
  }
  const bucket = u.hostname;
  if (!bucket) throw invalid(`${addr}: no bucket; expected ${S3_HELP}`);
  const known = new Set(['index', 'endpoint', 'region', 'force-path-style', 'compression', 'level', 'timeout']);
  for (const k of u.searchParams.keys()) {
    if (!known.has(k)) throw invalid(`${addr}: unknown parameter ${JSON.stringify(k)} (known: ${[...known].join(', ')})`);
  }
  const indexUrl = u.searchParams.get('index');
  if (!indexUrl || !isPostgresAddr(indexUrl)) {
    throw invalid(`${addr}: needs index=postgres://… (the blob index lives in PostgreSQL; percent-encode it if it has '&'); expected ${S3_HELP}`);
  }
  const endpoint = u.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) throw invalid(`${addr}: endpoint must be an http:// or https:// URL`);
  let prefix = decodeURIComponent(u.pathname.replace(/^\/+/, ''));
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  const fps = u.searchParams.get('force-path-style');
  if (fps !== null && fps !== 'true' && fps !== 'false') throw invalid(`${addr}: force-path-style must be true or false`);
  return {
    compression: compressionOf(addr, u.searchParams),
    bucket,
    prefix,
    endpoint,
    region: u.searchParams.get('region') ?? undefined,
    forcePathStyle: fps === null ? endpoint !== undefined : fps === 'true',
    indexUrl,
    stallMs: stallOf(addr, u.searchParams.get('timeout')),
  };
}

function stallOf(addr: string, v: string | null): number | undefined {
  if (v === null) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 3600) throw invalid(`${addr}: timeout must be a number of seconds above 0 and at most 3600, not ${JSON.stringify(v)}`);
  return Math.round(n * 1000);
}

function compressionOf(addr: string, q: URLSearchParams): Compression | undefined {
  const level = q.get('level');
  const kind = q.get('compression') ?? (level === null ? undefined : 'zstd');
  if (kind === undefined) return undefined;
  if (kind === 'none') {
    if (level !== null) throw invalid(`${addr}: level is for compression=zstd, not none`);
    return {};
  }
  if (kind !== 'zstd') throw invalid(`${addr}: compression must be zstd or none, not ${JSON.stringify(kind)}`);
  if (level === null) return { level: DEFAULT_LEVEL };
  const n = Number(level);
  if (!/^-?\d+$/.test(level) || n < -7 || n > 19 || n === 0) throw invalid(`${addr}: level must be a zstd level from 1 (fast) to 19 (small), or -7..-1 (faster), not ${JSON.stringify(level)}`);
  return { level: n };
}

/** The PostgreSQL database behind a postgres:// or s3://…?index= address. */
export function metadataUrl(addr: string): string {
  return isS3Addr(addr) ? parseS3Addr(addr).indexUrl : addr;
}
