// Fail fast with a clear message when a scale-out store is unreachable,
// instead of on the first request a client makes.
import { isPostgresAddr, isS3Addr, metadataUrl, parseS3Addr } from './addr.js';
import { openPgIndex } from './pg-index.js';
import { S3Objects } from './s3-objects.js';
import { CastoreError } from '../castore/errors.js';

export async function probeScaleout(addrs: string[]): Promise<void> {
  const pgUrls = new Set(addrs.filter((a) => isS3Addr(a) || isPostgresAddr(a)).map(metadataUrl));
  for (const url of pgUrls) {
    const db = openPgIndex(url);
    try {
      await db.query('SELECT 1');
    } finally {
      await db.release();
    }
  }
  for (const addr of new Set(addrs.filter(isS3Addr))) {
    const s3 = new S3Objects(parseS3Addr(addr));
    try {
      await s3.headBucket();
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const why =
        status === 404 ? 'the bucket does not exist; create it first'
        : status === 403 ? 'access denied; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE'
        : (err as Error).message || (err as Error).name;
      throw new CastoreError('unavailable', `S3 bucket ${s3.loc.bucket}${s3.loc.endpoint ? ` at ${s3.loc.endpoint}` : ''}: ${why}`, { cause: err });
    } finally {
      s3.close();
    }
  }
}

/**
 * The address with any password replaced, for logs: in a URL
 * (`//user:pass@`) and in one percent-encoded inside a parameter
 * (`%2F%2Fuser%3Apass%40`, which cannot reach past its parameter's `&`).
 * Only the password: the S3 endpoint, the region and the database's user
 * and host stay readable.
 */
export function redactAddr(addr: string): string {
  return addr
    .replace(/(\/\/[^:@/%]*:)[^@/]*?@/g, '$1***@')
    .replace(/(%2F%2F[^:@/%&]*%3A)(?:(?!%40)[^@/&#?=])*?%40/gi, '$1***%40');
}
