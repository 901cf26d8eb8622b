// The bucket side of a collection: objects with their times, deletions and
// multipart uploads left behind.
import { S3Objects } from './s3-objects.js';

export interface StoredObject {
  object: string;
  size: number;
  modifiedMs: number;
}

export async function* listObjects(s3: S3Objects): AsyncIterable<StoredObject> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const client = await s3.client();
  let token: string | undefined;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: s3.loc.bucket, Prefix: s3.loc.prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) {
      // No time: treat as new (never deleted).
      yield { object: o.Key!.slice(s3.loc.prefix.length), size: o.Size ?? 0, modifiedMs: o.LastModified?.getTime() ?? Number.MAX_SAFE_INTEGER };
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
}

/** Aborts the multipart uploads under the prefix begun before `cutMs`; returns how many. */
export async function abortStaleUploads(s3: S3Objects, cutMs: number): Promise<number> {
  const { ListMultipartUploadsCommand, AbortMultipartUploadCommand } = await import('@aws-sdk/client-s3');
  const client = await s3.client();
  let n = 0;
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  for (;;) {
    const r = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.loc.bucket, Prefix: s3.loc.prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
    for (const u of r.Uploads ?? []) {
      if (!u.Key || !u.UploadId || !u.Initiated || u.Initiated.getTime() >= cutMs) continue;
      await client.send(new AbortMultipartUploadCommand({ Bucket: s3.loc.bucket, Key: u.Key, UploadId: u.UploadId }));
      n++;
    }
    if (!r.IsTruncated) return n;
    keyMarker = r.NextKeyMarker;
    idMarker = r.NextUploadIdMarker;
  }
}
