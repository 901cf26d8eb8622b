// What the S3 server itself delivers: every object of a store read back
// with the same signed GETs the store's read path sends (s3-get.ts, body
// taken by 'data' events as rangeChunks does), one at a time, several at
// once, and cut into ranged GETs several at once. NAR rendering from the
// store cannot beat the best of these: it is the backend's floor. Likewise
// for writing: objects of the same sizes PUT several at once (through the
// SDK, as the store's writes), which no copy into the store can beat.
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { Limiter } from '../src/util/limiter.js';
import { S3Getter } from '../src/scaleout/s3-get.js';
import type { S3Credentials } from '../src/scaleout/s3-sigv4.js';

export interface S3Object {
  key: string;
  size: number;
}

export async function listObjects(s3: S3Client, bucket: string, prefix: string): Promise<S3Object[]> {
  const out: S3Object[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** Bytes [offset, offset+length) of `key`, counted as they arrive and dropped. */
async function get(getter: S3Getter, key: string, offset: number, length: number): Promise<number> {
  const body = await getter.get(key, offset, length);
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    body.on('data', (c: Buffer) => (n += c.length));
    body.once('end', resolve);
    body.once('error', reject);
  });
  return n;
}

/** The store's own GET path (s3-get.ts) to `bucket`, with these credentials. */
export function leanGetter(bucket: string, endpoint: string, credentials: S3Credentials): S3Getter {
  return new S3Getter({ bucket, endpoint, region: 'us-east-1', forcePathStyle: true }, async () => credentials);
}

/**
 * Reads every object whole (`rangeBytes` undefined) or in ranges of that
 * many bytes, `parallel` GETs at a time; resolves to the bytes read.
 */
export async function readAll(getter: S3Getter, objects: S3Object[], parallel: number, rangeBytes?: number): Promise<number> {
  const limit = new Limiter(parallel);
  const gets: Promise<number>[] = [];
  for (const o of objects) {
    const step = rangeBytes ?? o.size;
    for (let at = 0; at < o.size; at += step) gets.push(limit.run(() => get(getter, o.key, at, Math.min(step, o.size - at))));
  }
  const total = (await Promise.all(gets)).reduce((a, b) => a + b, 0);
  const want = objects.reduce((a, o) => a + o.size, 0);
  if (total !== want) throw new Error(`read ${total} of ${want} bytes`);
  return total;
}

/** Bytes every PUT of writeAll() repeats: random, so nothing on the way compresses them. */
const PUT_CHUNK = randomBytes(1 << 20);

/** A body of `size` bytes made of PUT_CHUNK again and again: no GiB of memory for a large object. */
function repeatedBody(size: number): Readable {
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, PUT_CHUNK.length);
      left -= n;
      this.push(PUT_CHUNK.subarray(0, n));
    },
  });
}

/**
 * PUTs objects of the given sizes (one PutObject each, `parallel` at a
 * time) under `prefix` in `bucket`; resolves to the bytes written.
 */
export async function writeAll(s3: S3Client, bucket: string, prefix: string, objects: S3Object[], parallel: number): Promise<number> {
  const limit = new Limiter(parallel);
  await Promise.all(
    objects.map((o, i) =>
      limit.run(() => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${i}`, Body: repeatedBody(o.size), ContentLength: o.size }))),
    ),
  );
  return objects.reduce((a, o) => a + o.size, 0);
}

/** Deletes every object under `prefix` (untimed clean-up between rounds, so the cluster does not fill up). */
export async function deleteAll(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  const objects = await listObjects(s3, bucket, prefix);
  for (let i = 0; i < objects.length; i += 1000) {
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects.slice(i, i + 1000).map((o) => ({ Key: o.key })), Quiet: true } }));
  }
}
