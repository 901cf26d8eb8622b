// The few S3 operations the blob store needs, over @aws-sdk/client-s3
// (GETs signed by hand: s3-get.ts), with
// failures turned into our error kinds and messages that say what to fix.
// The SDK is loaded on first use: it takes about 150 ms, which every copy
// and daemon start would pay even when no address names S3.
import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { CastoreError, storageError } from '../castore/errors.js';
import type { S3Location } from './addr.js';
import { DEFAULT_STALL_MS, S3Getter } from './s3-get.js';
import type { S3Credentials } from './s3-sigv4.js';

/**
 * S3's smallest part (but the last): each large upload fills one and two
 * more may be sending (part-buffers.ts); 8 MiB parts were ~10 MiB more of
 * a copy's peak RSS, at the same speed in alternated runs.
 */
export const PART_SIZE = 5 << 20;
/** Requests whose bodies are sent unsigned (see makeClient). */
const UNSIGNED_BODIES = new Set(['PutObjectCommand', 'UploadPartCommand']);

/** The object does not exist (any more): e.g. a pack a collector rewrote and deleted. */
export class ObjectGone extends CastoreError {
  constructor(
    readonly object: string,
    message: string,
    cause: unknown,
  ) {
    super('storage', `storage error: ${message}`, { cause });
  }
}

// The SDK version is pinned (later releases need Node 22); its warning
// about future releases is not something our users can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const sdk = () => import('@aws-sdk/client-s3');

/**
 * Keys from the environment, which the SDK's default chain takes first
 * (unless AWS_PROFILE names a profile): with them, reads need no SDK, whose
 * loading was a sixth of a small `nix-castore nar` from S3.
 */
function envCredentials(): S3Credentials | undefined {
  const e = process.env;
  if (e.AWS_PROFILE || !e.AWS_ACCESS_KEY_ID || !e.AWS_SECRET_ACCESS_KEY) return undefined;
  return { accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY, sessionToken: e.AWS_SESSION_TOKEN || undefined };
}

export class S3Objects {
  private made: Promise<S3Client> | undefined;
  /** GETs go without the SDK (s3-get.ts): its CPU per request was most of NAR rendering's. */
  private readonly getter: S3Getter;
  /** HTTP requests sent to S3 (each attempt), for tests and benchmarks. */
  requests = 0;
  /** GETs whose body is not finished yet, and body bytes received: tests check that cancelled reads stop. */
  getsInFlight = 0;
  bytesReceived = 0;
  constructor(readonly loc: S3Location) {
    const fromEnv = envCredentials();
    this.getter = new S3Getter({ ...loc, region: this.region() }, async () => fromEnv ?? (await this.client()).config.credentials(), loc.stallMs);
    this.getter.onAttempt = () => this.requests++;
  }

  private region(): string {
    return this.loc.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  }

  /** Whether the SDK was loaded for this store (tests: reads with keys in the environment do without). */
  get sdkUsed(): boolean {
    return this.made !== undefined;
  }

  /** The SDK client, made on first use. */
  client(): Promise<S3Client> {
    return (this.made ??= sdk().then(({ S3Client }) => this.makeClient(S3Client)));
  }

  private makeClient(S3Client: typeof import('@aws-sdk/client-s3').S3Client): S3Client {
    // The pinned SDK supports Node 20; its warning is about later releases,
    // and printed it on every command's stderr (set to "false" to see it).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const client = new S3Client({
      region: this.region(),
      endpoint: this.loc.endpoint,
      forcePathStyle: this.loc.forcePathStyle,
      // Streamed bodies would otherwise go aws-chunked with trailing
      // checksums, which Ceph RGW 16 and other S3 servers refuse.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // A silent S3 fails the request (and the SDK retries it) rather than hanging it: the same limit as the GETs'.
      requestHandler: { requestTimeout: this.loc.stallMs ?? DEFAULT_STALL_MS },
    });
    client.middlewareStack.add(
      (next) => (args) => {
        this.requests++;
        return next(args);
      },
      { step: 'deserialize', name: 'nixCastoreCountRequests' },
    );
    // PUT bodies are not hashed for the signature (as the GETs of s3-get.ts):
    // the SDK's SHA-256 of every pack and part cost a copy → S3 ~4 s of CPU
    // per 1.4 GiB on this machine. Over HTTPS, TLS protects the bytes; and
    // a NAR rendered from them is checked against its NarHash.
    client.middlewareStack.add(
      (next, context) => (args) => {
        const req = args.request as { headers?: Record<string, string> };
        if (UNSIGNED_BODIES.has(context.commandName ?? '') && req.headers) req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        return next(args);
      },
      { step: 'build', name: 'nixCastoreUnsignedPayload' },
    );
    return client;
  }

  key(object: string): string {
    return this.loc.prefix + object;
  }

  private fail(what: string, err: unknown): CastoreError {
    const where = `s3://${this.loc.bucket}/${this.loc.prefix}${this.loc.endpoint ? ` at ${this.loc.endpoint}` : ''}`;
    if (isServiceError(err)) {
      if (err.name === 'NoSuchBucket') return storageError(`${what}: bucket ${this.loc.bucket} does not exist (${where}); create it first`, err);
      if (err.name === 'RequestTimeTooSkewed') return storageError(`${what}: ${where} refuses this machine's clock as too far off; set it right (e.g. NTP)`, err);
      if (err.$metadata?.httpStatusCode === 403) return new CastoreError('storage', `storage error: ${what}: access denied by ${where}; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (${err.name})`, { cause: err });
      return storageError(`${what} (${where}): ${err.name}: ${err.message}`, err);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ECONNRESET') {
      return new CastoreError('unavailable', `${what}: cannot reach ${where}: ${(err as Error).message}`, { cause: err });
    }
    return storageError(`${what} (${where}): ${(err as Error).message}`, err);
  }

  async put(object: string, body: Buffer): Promise<void> {
    try {
      const { PutObjectCommand } = await sdk();
      await (await this.client()).send(new PutObjectCommand({ Bucket: this.loc.bucket, Key: this.key(object), Body: body, ContentLength: body.length }));
    } catch (err) {
      throw this.fail(`writing ${object}`, err);
    }
  }

  /** Starts a multipart upload of `object`; its upload id. */
  async startMultipart(object: string): Promise<string> {
    try {
      const { CreateMultipartUploadCommand } = await sdk();
      const r = await (await this.client()).send(new CreateMultipartUploadCommand({ Bucket: this.loc.bucket, Key: this.key(object) }));
      if (!r.UploadId) throw new Error('no UploadId in the answer');
      return r.UploadId;
    } catch (err) {
      throw this.fail(`starting an upload of ${object}`, err);
    }
  }

  /** Part `n` (from 1) of a multipart upload; its ETag. */
  async putPart(object: string, uploadId: string, n: number, body: Buffer): Promise<string> {
    try {
      const { UploadPartCommand } = await sdk();
      const r = await (await this.client()).send(new UploadPartCommand({ Bucket: this.loc.bucket, Key: this.key(object), UploadId: uploadId, PartNumber: n, Body: body, ContentLength: body.length }));
      if (!r.ETag) throw new Error('no ETag in the answer');
      return r.ETag;
    } catch (err) {
      throw this.fail(`writing part ${n} of ${object}`, err);
    }
  }

  async completeMultipart(object: string, uploadId: string, etags: string[]): Promise<void> {
    try {
      const { CompleteMultipartUploadCommand } = await sdk();
      await (await this.client()).send(
        new CompleteMultipartUploadCommand({ Bucket: this.loc.bucket, Key: this.key(object), UploadId: uploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
      );
    } catch (err) {
      throw this.fail(`finishing the upload of ${object}`, err);
    }
  }

  async abortMultipart(object: string, uploadId: string): Promise<void> {
    try {
      const { AbortMultipartUploadCommand } = await sdk();
      await (await this.client()).send(new AbortMultipartUploadCommand({ Bucket: this.loc.bucket, Key: this.key(object), UploadId: uploadId }));
    } catch (err) {
      throw this.fail(`abandoning the upload of ${object}`, err);
    }
  }

  /**
   * Bytes [offset, offset+length) of an object, streamed. `signal` aborts
   * the GET (before or during the body); a consumer that stops early
   * closes its connection too.
   */
  async range(object: string, offset: number, length: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const body = await this.openRange(object, offset, length, signal);
    return body ? this.counted(object, body, signal) : (async function* () {})();
  }

  /**
   * Exactly bytes [offset, offset+length) of an object, as the chunks they
   * arrived in (views, not copies). Taken by 'data' events: the renderer
   * wants whole ranges, so no async-iterator step (promises) per chunk.
   */
  async rangeChunks(object: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array[]> {
    const body = await this.openRange(object, offset, length, signal);
    if (!body) return [];
    const chunks: Uint8Array[] = [];
    let got = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const stop = () => body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        signal?.addEventListener('abort', stop, { once: true });
        const done = (err?: unknown) => {
          signal?.removeEventListener('abort', stop);
          body.off('data', onData);
          if (err !== undefined) reject(this.bodyFailure(object, err, signal));
          else resolve();
        };
        const onData = (chunk: Buffer) => {
          this.bytesReceived += chunk.length;
          if (got + chunk.length > length) return body.destroy(storageError(`${object}: S3 returned more than the ${length} bytes asked for at ${offset}`));
          if (chunk.length > 0) chunks.push(chunk);
          got += chunk.length;
        };
        body.on('data', onData);
        body.once('end', () => done());
        body.once('error', done);
        body.once('close', () => {
          if (!body.readableEnded) done(new Error('S3 closed the connection before the end of the answer'));
        });
      });
    } finally {
      body.destroy();
      this.getsInFlight--;
    }
    if (got !== length) throw storageError(`${object} is shorter than the index says: ${got} of ${length} bytes at ${offset}`);
    return chunks;
  }

  /**
   * The GET of bytes [offset, offset+length) of an object, counted in
   * getsInFlight (the caller takes it off once done with the body);
   * undefined for an empty range, which needs no request.
   */
  private async openRange(object: string, offset: number, length: number, signal?: AbortSignal): Promise<Readable | undefined> {
    signal?.throwIfAborted();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw storageError(`reading ${object}: bad range ${offset}+${length}`);
    if (length === 0) return undefined;
    this.getsInFlight++;
    try {
      return await this.getter.get(this.key(object), offset, length, signal);
    } catch (err) {
      this.getsInFlight--;
      throw this.readFailure(object, err, signal);
    }
  }

  /** A failure while an answer's body arrived: our own checks as they are, the connection's said with where it was. */
  private bodyFailure(object: string, err: unknown, signal?: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    return err instanceof CastoreError ? err : this.fail(`reading ${object}`, err);
  }

  private readFailure(object: string, err: unknown, signal?: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (isServiceError(err) && err.name !== 'NoSuchBucket' && (err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404)) {
      return new ObjectGone(object, `reading ${object}: it is not in s3://${this.loc.bucket}/${this.loc.prefix}`, err);
    }
    return this.fail(`reading ${object}`, err);
  }

  private async *counted(object: string, body: Readable, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const stop = () => body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const chunk of body) {
        this.bytesReceived += (chunk as Uint8Array).length;
        yield chunk as Uint8Array;
      }
    } catch (err) {
      throw this.bodyFailure(object, err, signal);
    } finally {
      signal?.removeEventListener('abort', stop);
      body.destroy();
      this.getsInFlight--;
    }
  }

  async delete(object: string): Promise<void> {
    try {
      const { DeleteObjectCommand } = await sdk();
      await (await this.client()).send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: this.key(object) }));
    } catch (err) {
      throw this.fail(`deleting ${object}`, err);
    }
  }

  /** Every object under the prefix (keys relative to it), page by page. */
  async *list(): AsyncIterable<{ object: string; size: number }> {
    let token: string | undefined;
    do {
      let r;
      try {
        const { ListObjectsV2Command } = await sdk();
        r = await (await this.client()).send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: this.loc.prefix, ContinuationToken: token }));
      } catch (err) {
        throw this.fail('listing objects', err);
      }
      for (const o of r.Contents ?? []) yield { object: o.Key!.slice(this.loc.prefix.length), size: o.Size ?? 0 };
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  /** Fails unless the bucket exists and answers (a HEAD request). */
  async headBucket(): Promise<void> {
    const { HeadBucketCommand } = await sdk();
    await (await this.client()).send(new HeadBucketCommand({ Bucket: this.loc.bucket }));
  }

  close(): void {
    this.getter.close();
    void this.made?.then((c) => c.destroy());
  }
}

/** An error the S3 service sent (the SDK's S3ServiceException), told apart without loading the SDK. */
function isServiceError(err: unknown): err is Error & { $metadata?: { httpStatusCode?: number } } {
  return err instanceof Error && typeof (err as { $fault?: unknown }).$fault === 'string' && '$metadata' in err;
}
