// What the S3 server itself delivers: every object of a store read back
// with plain GETs through the AWS SDK, one at a time, several at once, and
// cut into ranged GETs several at once. NAR rendering from the store
// cannot beat the best of these: it is the backend's floor. Likewise for
// writing: objects of the same sizes PUT several at once, which no copy
// into the store can beat.
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { Limiter } from '../src/util/limiter.js';

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

async function get(s3: S3Client, bucket: string, key: string, range?: [number, number]): Promise<number> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range && `bytes=${range[0]}-${range[1] - 1}` }));
  let n = 0;
  for await (const c of r.Body as Readable) n += (c as Buffer).length;
  return n;
}

/**
 * Reads every object whole (`rangeBytes` undefined) or in ranges of that
 * many bytes, `parallel` GETs at a time; resolves to the bytes read.
 */
export async function readAll(s3: S3Client, bucket: string, objects: S3Object[], parallel: number, rangeBytes?: number): Promise<number> {
  const limit = new Limiter(parallel);
  const gets: Promise<number>[] = [];
  for (const o of objects) {
    if (rangeBytes === undefined || o.size <= rangeBytes) gets.push(limit.run(() => get(s3, bucket, o.key)));
    else for (let at = 0; at < o.size; at += rangeBytes) gets.push(limit.run(() => get(s3, bucket, o.key, [at, Math.min(o.size, at + rangeBytes)])));
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
