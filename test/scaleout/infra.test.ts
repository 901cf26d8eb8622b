// Smoke test of the scale-out test infrastructure itself (scripts/scaleout/
// and test/helpers/scaleout.ts): the Ceph radosgw answers the S3 calls the
// backend relies on, PostgreSQL answers SQL, and freshScaleoutAddr() hands
// out an isolated bucket + database that drop() removes again.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pg from 'pg';
import { freshScaleoutAddr, scaleoutEnv, scaleoutS3Client, type ScaleoutAddr, type ScaleoutEnv } from '../helpers/scaleout.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function query(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(sql, params);
  } finally {
    await c.end();
  }
}

describe('scale-out test infrastructure (Ceph radosgw + PostgreSQL)', () => {
  let env: ScaleoutEnv;
  let s: ScaleoutAddr;
  let s3: S3Client;

  before(async () => {
    env = await scaleoutEnv();
    s = await freshScaleoutAddr('infra smoke');
    s3 = scaleoutS3Client(env);
  });
  after(async () => {
    s3?.destroy();
    await s?.drop();
  });

  it('exports the credentials for child processes and hands out a well-formed address', () => {
    assert.equal(process.env.AWS_ACCESS_KEY_ID, env.accessKeyId);
    assert.equal(process.env.AWS_SECRET_ACCESS_KEY, env.secretAccessKey);
    assert.ok(process.env.AWS_REGION);
    assert.match(env.s3Endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(env.pgUrl, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);

    const u = new URL(s.addr);
    assert.equal(u.protocol, 's3:');
    assert.equal(u.hostname, s.bucket);
    assert.equal(u.pathname, '/store');
    assert.equal(u.searchParams.get('endpoint'), env.s3Endpoint);
    assert.equal(u.searchParams.get('region'), 'us-east-1');
    assert.equal(u.searchParams.get('index'), s.pgUrl);
    assert.ok(s.addr.includes(`index=${encodeURIComponent(s.pgUrl)}`), 'values are percent-encoded');
    assert.match(s.bucket, /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);
    assert.notEqual(new URL(s.pgUrl).pathname, '/postgres');
    // And the backend reads it the same way.
    const loc = parseS3Addr(s.addr);
    assert.deepEqual([loc.bucket, loc.prefix, loc.endpoint, loc.indexUrl, loc.forcePathStyle], [s.bucket, 'store/', env.s3Endpoint, s.pgUrl, true]);
  });

  it('S3: PUT, GET, ranged GET, HEAD and list round-trip', async () => {
    const body = randomBytes(64 * 1024);
    const put = await s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: 'store/a/one', Body: body }));
    assert.equal(put.ETag, `"${md5(body)}"`);

    const got = await s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: 'store/a/one' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);

    const range = await s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: 'store/a/one', Range: 'bytes=1000-1999' }));
    assert.equal(range.ContentRange, `bytes 1000-1999/${body.length}`);
    assert.deepEqual(Buffer.from(await range.Body!.transformToByteArray()), body.subarray(1000, 2000));

    const head = await s3.send(new HeadObjectCommand({ Bucket: s.bucket, Key: 'store/a/one' }));
    assert.equal(head.ContentLength, body.length);
    assert.equal(head.ETag, `"${md5(body)}"`);

    for (const k of ['store/a/two', 'store/b/three', 'elsewhere']) {
      await s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: k, Body: Buffer.from(k) }));
    }
    const list = await s3.send(new ListObjectsV2Command({ Bucket: s.bucket, Prefix: 'store/' }));
    assert.deepEqual(list.Contents?.map((o) => o.Key), ['store/a/one', 'store/a/two', 'store/b/three']);
    const dirs = await s3.send(new ListObjectsV2Command({ Bucket: s.bucket, Prefix: 'store/', Delimiter: '/' }));
    assert.deepEqual(dirs.CommonPrefixes?.map((p) => p.Prefix), ['store/a/', 'store/b/']);
  });

  it('S3: a 12 MiB streamed multipart upload (lib-storage, 5 MiB parts) reads back identical', async () => {
    const data = randomBytes(12 << 20);
    // A stream of 1 MiB chunks, as the backend streams large blobs.
    const chunks = Array.from({ length: 12 }, (_, i) => data.subarray(i << 20, (i + 1) << 20));
    const up = new Upload({
      client: s3,
      params: { Bucket: s.bucket, Key: 'store/big', Body: Readable.from(chunks) },
      partSize: 5 << 20,
      queueSize: 2,
    });
    await up.done();
    const head = await s3.send(new HeadObjectCommand({ Bucket: s.bucket, Key: 'store/big' }));
    assert.equal(head.ContentLength, data.length);
    assert.match(head.ETag ?? '', /-3"$/, 'three parts');
    const got = await s3.send(new GetObjectCommand({ Bucket: s.bucket, Key: 'store/big' }));
    assert.equal(sha256(await got.Body!.transformToByteArray()), sha256(data));
  });

  it('PostgreSQL: SQL on the fresh database', async () => {
    const db = new URL(s.pgUrl).pathname.slice(1);
    const r = await query(s.pgUrl, 'select current_database() as db, current_setting(\'server_version_num\')::int as v');
    assert.equal(r.rows[0].db, db);
    assert.ok(r.rows[0].v >= 130000, 'DROP DATABASE … WITH (FORCE) needs 13+');
    const c = new pg.Client({ connectionString: s.pgUrl });
    await c.connect();
    try {
      await c.query('create table t (k text primary key, v bytea not null)');
      await c.query('insert into t values ($1, $2), ($3, $4)', ['a', Buffer.from([1, 2]), 'b', Buffer.alloc(0)]);
      const rows = (await c.query('select k, v from t order by k')).rows;
      assert.deepEqual(rows, [{ k: 'a', v: Buffer.from([1, 2]) }, { k: 'b', v: Buffer.alloc(0) }]);
    } finally {
      await c.end();
    }
  });

  it('drop() removes the bucket (objects and all) and the database, and may be called twice', async () => {
    // An open connection must not keep the database alive (WITH (FORCE)).
    const lingering = new pg.Client({ connectionString: s.pgUrl });
    lingering.on('error', () => {});
    await lingering.connect();
    const db = new URL(s.pgUrl).pathname.slice(1);
    await s.drop();
    await s.drop();
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: s.bucket })), (e: Error) => e.name === 'NotFound' || e.name === 'NoSuchBucket');
    const r = await query(env.pgUrl, 'select 1 from pg_database where datname = $1', [db]);
    assert.equal(r.rowCount, 0);
    await lingering.end().catch(() => {});
  });

  it('buckets and databases of different freshScaleoutAddr() calls are distinct', async () => {
    const [a, b] = await Promise.all([freshScaleoutAddr('infra smoke'), freshScaleoutAddr('infra smoke')]);
    try {
      assert.notEqual(a.bucket, b.bucket);
      assert.notEqual(a.pgUrl, b.pgUrl);
      await s3.send(new PutObjectCommand({ Bucket: a.bucket, Key: 'x', Body: Buffer.from('x') }));
      const inB = await s3.send(new ListObjectsV2Command({ Bucket: b.bucket }));
      assert.equal(inB.KeyCount ?? 0, 0);
    } finally {
      await Promise.all([a.drop(), b.drop()]);
    }
  });
});
