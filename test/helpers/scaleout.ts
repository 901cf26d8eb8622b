// The scale-out backend's test services: a throwaway Ceph cluster (radosgw
// S3) and a throwaway PostgreSQL, both real. `npm test` starts them once for
// the whole run with scripts/scaleout/with-scaleout.sh and passes them on in
// environment variables; a test file run by hand (`node --test dist/test/…`)
// gets its own pair, started here on first use and stopped when the process
// exits.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import pg from 'pg';

/** scripts/scaleout/ at the repository root (this file runs from dist/test/helpers/). */
const SCRIPTS = fileURLToPath(new URL('../../../scripts/scaleout/', import.meta.url));

export interface ScaleoutEnv {
  /** radosgw, e.g. http://127.0.0.1:16465 */
  s3Endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The server's maintenance database, e.g. postgres://postgres@127.0.0.1:28606/postgres */
  pgUrl: string;
}

let envPromise: Promise<ScaleoutEnv> | undefined;

/**
 * The S3 endpoint, its credentials and the PostgreSQL server to test
 * against: from NIX_CASTORE_TEST_S3_ENDPOINT, NIX_CASTORE_TEST_PG_URL and
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION when set (as
 * with-scaleout.sh does), otherwise from a Ceph + PostgreSQL pair started for
 * this process. Either way the AWS_* variables end up in process.env, where
 * the backend (and any daemon a test spawns) takes its credentials from.
 */
export function scaleoutEnv(): Promise<ScaleoutEnv> {
  envPromise ??= fromEnvOrStart();
  return envPromise;
}

async function fromEnvOrStart(): Promise<ScaleoutEnv> {
  const e = process.env;
  if (e.NIX_CASTORE_TEST_S3_ENDPOINT && e.NIX_CASTORE_TEST_PG_URL) {
    if (!e.AWS_ACCESS_KEY_ID || !e.AWS_SECRET_ACCESS_KEY) {
      throw new Error('NIX_CASTORE_TEST_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not');
    }
    e.AWS_REGION ||= 'us-east-1';
    return {
      s3Endpoint: e.NIX_CASTORE_TEST_S3_ENDPOINT,
      accessKeyId: e.AWS_ACCESS_KEY_ID,
      secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
      region: e.AWS_REGION,
      pgUrl: e.NIX_CASTORE_TEST_PG_URL,
    };
  }
  const vars = await startOwnServices();
  // Our own cluster's keys win over any AWS_* the caller happens to have:
  // other keys would not work against it. Exported so that child processes
  // (daemons, the CLI) reach the same services.
  Object.assign(process.env, vars);
  return {
    s3Endpoint: vars.NIX_CASTORE_TEST_S3_ENDPOINT,
    accessKeyId: vars.AWS_ACCESS_KEY_ID,
    secretAccessKey: vars.AWS_SECRET_ACCESS_KEY,
    region: vars.AWS_REGION,
    pgUrl: vars.NIX_CASTORE_TEST_PG_URL,
  };
}

function run(script: string, arg: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('bash', [join(SCRIPTS, script), arg], { maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${script} failed (${err.message.split('\n')[0]}):\n${stderr}`));
      else resolve();
    });
  });
}

function readEnvFile(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

async function startOwnServices(): Promise<Record<string, string>> {
  const started = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'scaleout-'));
  // postgres-up.sh runs the server as user postgres, who must pass through.
  chmodSync(root, 0o711);
  const ceph = join(root, 'ceph');
  const pgDir = join(root, 'pg');
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const [script, dir] of [['ceph-down.sh', ceph], ['postgres-down.sh', pgDir]]) {
      try {
        execFileSync('bash', [join(SCRIPTS, script), dir], { stdio: 'ignore' });
      } catch {
        // Best effort at exit; the watchdog below tries again.
      }
    }
    rmSync(root, { recursive: true, force: true });
  };
  // Stop them however this process ends: normal exit, a signal, or even
  // SIGKILL (a detached watchdog that outlives us runs the same scripts).
  process.once('exit', stop);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stop();
      // Keep the default outcome (death by that signal) unless someone else
      // handles it too.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
  spawn('bash', ['-c', `
    . "$0/lib.sh"
    while proc_running "$1"; do sleep 1; done
    bash "$0/ceph-down.sh" "$2/ceph"; bash "$0/postgres-down.sh" "$2/pg"; rm -rf "$2"`,
  SCRIPTS, String(process.pid), root], { detached: true, stdio: 'ignore' }).unref();

  // Independent services on disjoint ports and directories: start both at once.
  const results = await Promise.allSettled([run('ceph-up.sh', ceph), run('postgres-up.sh', pgDir)]);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
  if (failures.length) {
    stop();
    throw new Error(`starting the scale-out test services failed:\n${failures.join('\n')}`);
  }
  const vars = { ...readEnvFile(join(ceph, 'ceph.env')), ...readEnvFile(join(pgDir, 'postgres.env')) };
  process.stderr.write(`scaleout: started Ceph (${vars.NIX_CASTORE_TEST_S3_ENDPOINT}) + PostgreSQL for this process in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return vars;
}

/** An S3 client for the test cluster, with the settings radosgw 16 needs. */
export function scaleoutS3Client(env: ScaleoutEnv): S3Client {
  return new S3Client({
    endpoint: env.s3Endpoint,
    region: env.region,
    forcePathStyle: true,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    // Otherwise streamed bodies go out aws-chunked with a trailing checksum,
    // which RGW 16 rejects (411 MissingContentLength).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A Ceph that stops answering (a memstore OSD that declares itself full)
    // then fails the test that waits on it instead of hanging the suite.
    requestHandler: { requestTimeout: 60_000 },
  });
}

export interface ScaleoutAddr {
  /** s3://BUCKET/store?endpoint=…&region=…&index=postgres://…/DB */
  addr: string;
  bucket: string;
  /** URL of the fresh database. */
  pgUrl: string;
  /** Deletes the bucket (with everything in it) and drops the database. Idempotent. */
  drop(): Promise<void>;
}

let counter = 0;

/**
 * A store address on a fresh, empty bucket and a fresh, empty database, so
 * that tests never see each other's data. `label` only makes the names
 * readable (e.g. in `radosgw-admin bucket list`).
 */
export async function freshScaleoutAddr(label: string): Promise<ScaleoutAddr> {
  const env = await scaleoutEnv();
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 30) || 'test';
  const unique = `${process.pid.toString(36)}${(counter++).toString(36)}${randomBytes(3).toString('hex')}`;
  // Bucket names: 3-63 chars of [a-z0-9-]; database names: at most 63 bytes.
  const bucket = `t-${slug}-${unique}`;
  const database = `t_${slug.replace(/-/g, '_')}_${unique}`;

  const s3 = scaleoutS3Client(env);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await withPg(env.pgUrl, (c) => c.query(`CREATE DATABASE "${database}"`));
  const dbUrl = new URL(env.pgUrl);
  dbUrl.pathname = `/${database}`;
  const pgUrl = dbUrl.toString();

  let dropped: Promise<void> | undefined;
  return {
    addr: `s3://${bucket}/store?endpoint=${encodeURIComponent(env.s3Endpoint)}&region=${encodeURIComponent(env.region)}&index=${encodeURIComponent(pgUrl)}`,
    bucket,
    pgUrl,
    drop() {
      dropped ??= (async () => {
        const errors: unknown[] = [];
        try {
          await deleteBucket(s3, bucket);
        } catch (e) {
          errors.push(e);
        } finally {
          s3.destroy();
        }
        try {
          // FORCE: a test may have left a connection (or a daemon) open.
          await withPg(env.pgUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`));
        } catch (e) {
          errors.push(e);
        }
        if (errors.length) throw new AggregateError(errors, `dropping ${bucket} / ${database} failed`);
      })();
      return dropped;
    },
  };
}

async function withPg<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end();
  }
}

/** Aborts unfinished multipart uploads, deletes every object, then the bucket. */
async function deleteBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of page.Uploads ?? []) {
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }));
      }
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      const objects = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (objects.length) {
        const r = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
        if (r.Errors?.length) throw new Error(`deleting objects of ${bucket}: ${JSON.stringify(r.Errors.slice(0, 3))}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (e) {
    if ((e as { name?: string }).name === 'NoSuchBucket') return;
    throw e;
  }
}

/**
 * RGW's own accounting of a bucket (`radosgw-admin bucket stats`): bytes and
 * objects stored. Needs the test cluster's ceph.conf
 * (NIX_CASTORE_TEST_CEPH_CONF, written by ceph-up.sh); undefined without it.
 */
export async function rgwBucketStats(bucket: string): Promise<{ bytes: number; objects: number } | undefined> {
  await scaleoutEnv();
  const conf = process.env.NIX_CASTORE_TEST_CEPH_CONF;
  if (!conf) return undefined;
  const out = await new Promise<string>((resolve, reject) =>
    execFile('radosgw-admin', ['--conf', conf, 'bucket', 'stats', `--bucket=${bucket}`], { timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`radosgw-admin bucket stats: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  const main = (JSON.parse(out) as { usage?: Record<string, { size?: number; num_objects?: number }> }).usage?.['rgw.main'];
  return { bytes: main?.size ?? 0, objects: main?.num_objects ?? 0 };
}
