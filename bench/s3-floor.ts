// What the S3 server itself delivers: every object of a store read back
// with plain GETs through the AWS SDK, one at a time, several at once, and
// cut into ranged GETs several at once. NAR rendering from the store
// cannot beat the best of these: it is the backend's floor.
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
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
