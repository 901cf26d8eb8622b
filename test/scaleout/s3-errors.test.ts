// S3 failures come back as errors that say what to fix, against the real
// Ceph RGW: a missing bucket, refused credentials, an endpoint that does
// not answer. The SDK is loaded lazily, so these are told apart by the
// fields of the SDK's service errors, not by its classes.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { S3Objects } from '../../src/scaleout/s3-objects.js';
import { CastoreError } from '../../src/castore/errors.js';
import { scaleoutEnv, type ScaleoutEnv } from '../helpers/scaleout.js';

describe('S3 errors', () => {
  let env: ScaleoutEnv;
  before(async () => {
    env = await scaleoutEnv();
  });

  const objects = (bucket: string, endpoint = env.s3Endpoint) => new S3Objects({ bucket, prefix: 'p/', endpoint, forcePathStyle: true, region: env.region, indexUrl: '' });

  it('a missing bucket is named, with what to do', async () => {
    const s3 = objects(`no-such-bucket-${process.pid}`);
    try {
      const err = await s3.put('x', Buffer.from('hello')).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CastoreError, String(err));
      assert.equal(err.kind, 'storage');
      assert.match(err.message, /bucket no-such-bucket-\d+ does not exist .*create it first/);
    } finally {
      s3.close();
    }
  });

  it('refused credentials say which variables to check', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'nobody';
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret';
    const s3 = objects(`any-bucket-${process.pid}`);
    try {
      const err = await s3.put('x', Buffer.from('hello')).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CastoreError, String(err));
      assert.match(err.message, /access denied .*AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY/);
    } finally {
      s3.close();
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
  });

  it('an endpoint that does not answer is unavailable (retried by callers)', async () => {
    const s3 = objects('b', 'http://127.0.0.1:9');
    try {
      const err = await s3.put('x', Buffer.from('hello')).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CastoreError, String(err));
      assert.equal(err.kind, 'unavailable');
      assert.match(err.message, /cannot reach s3:\/\/b\/p\/ at http:\/\/127\.0\.0\.1:9/);
    } finally {
      s3.close();
    }
  });
});
