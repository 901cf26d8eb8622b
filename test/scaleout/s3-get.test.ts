// The read path's own SigV4-signed GETs (s3-get.ts) against the real Ceph
// RGW: signed requests are accepted (also for keys that need encoding), a
// range returns exactly its bytes, refused credentials and missing objects
// or buckets give the errors the SDK path gives, and connections are what
// they should be: reused after a complete GET, closed when a GET is aborted
// or its reader stops, bounded in number, retried when dropped. The
// connection facts are seen by a TCP relay between the reader and RGW.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { S3Objects, ObjectGone } from '../../src/scaleout/s3-objects.js';
import { MAX_SOCKETS, type S3Getter } from '../../src/scaleout/s3-get.js';
import { CastoreError } from '../../src/castore/errors.js';
import { freshScaleoutAddr, scaleoutEnv, type ScaleoutAddr, type ScaleoutEnv } from '../helpers/scaleout.js';

/** A TCP relay to RGW that counts connections: open now, most at once, ever. */
class Relay {
  private readonly server: net.Server;
  open = 0;
  most = 0;
  total = 0;
  /** Connections to drop at once on arrival (the client sees a reset). */
  dropNext = 0;
  /** Bytes of RGW's answers passed on per connection, then nothing more (a stalled S3); Infinity: all. */
  stallAfter = Infinity;
  private readonly closed: (() => void)[] = [];

  constructor(target: URL) {
    this.server = net.createServer((client) => {
      this.total++;
      if (this.dropNext > 0) {
        this.dropNext--;
        client.resetAndDestroy();
        return;
      }
      this.open++;
      this.most = Math.max(this.most, this.open);
      const upstream = net.connect(Number(target.port), target.hostname);
      client.pipe(upstream);
      let passed = 0;
      upstream.on('data', (c: Buffer) => {
        const n = Math.min(c.length, Math.max(0, this.stallAfter - passed));
        passed += c.length;
        if (n > 0 && !client.write(n === c.length ? c : c.subarray(0, n))) {
          upstream.pause();
          client.once('drain', () => upstream.resume());
        }
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
      client.once('close', () => {
        upstream.destroy();
        this.open--;
        for (const f of this.closed.splice(0)) f();
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** Resolves once no connection is open (the test runner's timeout bounds the wait). */
  async allClosed(): Promise<void> {
    while (this.open > 0) await new Promise<void>((r) => this.closed.push(r));
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe('S3 GETs signed by hand (real RGW)', () => {
  let env: ScaleoutEnv;
  let store: ScaleoutAddr;
  let direct: S3Objects;
  const big = randomBytes(24 << 20);
  const small = randomBytes(100_000);
  const objects = (endpoint: string, bucket = store.bucket, stallMs?: number) => new S3Objects({ bucket, prefix: 'p/', endpoint, forcePathStyle: true, region: env.region, indexUrl: '', stallMs });

  before(async () => {
    env = await scaleoutEnv();
    store = await freshScaleoutAddr('s3-get');
    direct = objects(env.s3Endpoint);
    await direct.put('big', big);
    await direct.put('small', small);
    await direct.put('dir with space/a+b=c&d!(x)*ü~', small);
  });
  after(async () => {
    direct.close();
    await store.drop();
  });

  it('a ranged GET is accepted and returns exactly the range', async () => {
    assert.deepEqual(await collect(await direct.range('small', 0, small.length)), small);
    assert.deepEqual(await collect(await direct.range('small', 1234, 5000)), small.subarray(1234, 6234));
    assert.deepEqual(await collect(await direct.range('big', (16 << 20) - 7, 5 << 20)), big.subarray((16 << 20) - 7, (21 << 20) - 7));
    // A range past the end gets what there is (the pack cache's windows rely on it).
    assert.deepEqual(await collect(await direct.range('small', 99_000, 8000)), small.subarray(99_000));
  });

  it('rangeChunks returns exactly the range, and refuses an object shorter than asked', async () => {
    assert.deepEqual(Buffer.concat(await direct.rangeChunks('big', 12345, 9 << 20)), big.subarray(12345, 12345 + (9 << 20)));
    await assert.rejects(direct.rangeChunks('small', 99_000, 8000), /small is shorter than the index says: 1000 of 8000 bytes at 99000/);
    await assert.rejects(direct.rangeChunks('no-such-object', 0, 10), ObjectGone);
    assert.equal(direct.getsInFlight, 0);
  });

  it('reads with keys in the environment do without the SDK (its loading was a sixth of a small nar)', async () => {
    const s3 = objects(env.s3Endpoint);
    try {
      assert.deepEqual(await collect(await s3.range('small', 5, 50)), small.subarray(5, 55));
      assert.equal(s3.sdkUsed, false);
    } finally {
      s3.close();
    }
  });

  it('keys that need percent-encoding are signed as S3 expects', async () => {
    assert.deepEqual(await collect(await direct.range('dir with space/a+b=c&d!(x)*ü~', 10, 20)), small.subarray(10, 30));
  });

  it('a missing object is ObjectGone, a missing bucket says to create it', async () => {
    const gone = await direct.range('no-such-object', 0, 10).then(() => undefined, (e: unknown) => e);
    assert.ok(gone instanceof ObjectGone, String(gone));
    assert.match(gone.message, /reading no-such-object: it is not in s3:\/\//);
    const other = objects(env.s3Endpoint, `no-such-bucket-${process.pid}`);
    try {
      const err = await other.range('x', 0, 10).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CastoreError && !(err instanceof ObjectGone), String(err));
      assert.match(err.message, /bucket no-such-bucket-\d+ does not exist .*create it first/);
    } finally {
      other.close();
    }
  });

  it('a wrong secret says which credentials to check', async () => {
    const saved = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret';
    const s3 = objects(env.s3Endpoint);
    try {
      const err = await s3.range('small', 0, 10).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CastoreError, String(err));
      assert.equal(err.kind, 'storage');
      assert.match(err.message, /reading small: access denied by s3:\/\/.*check AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY or AWS_PROFILE \(SignatureDoesNotMatch\)/);
    } finally {
      s3.close();
      process.env.AWS_SECRET_ACCESS_KEY = saved;
    }
  });

  it('a local clock off by an hour is corrected from the refusal, as the SDK does', async () => {
    const s3 = objects(env.s3Endpoint);
    try {
      const getter = (s3 as unknown as { getter: S3Getter }).getter;
      getter.clockOffsetMs = -3_600_000;
      assert.deepEqual(await collect(await s3.range('small', 0, 100)), small.subarray(0, 100));
      assert.equal(s3.requests, 2, 'refused once (RequestTimeTooSkewed), then accepted');
      assert.ok(Math.abs(getter.clockOffsetMs) < 300_000, `offset now ${getter.clockOffsetMs} ms`);
    } finally {
      s3.close();
    }
  });

  it('an endpoint that does not answer is unavailable', async () => {
    const s3 = objects('http://127.0.0.1:9');
    try {
      const err = await s3.range('small', 0, 10).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CastoreError, String(err));
      assert.equal(err.kind, 'unavailable');
      assert.equal(s3.requests, 3, 'tried as often as the SDK tries');
    } finally {
      s3.close();
    }
  });

  describe('connections', () => {
    /** `body` with a fresh reader whose every connection goes through a fresh relay. */
    const throughRelay = async (body: (s3: S3Objects, relay: Relay) => Promise<void>, stallMs?: number) => {
      const relay = new Relay(new URL(env.s3Endpoint));
      const s3 = objects(await relay.listen(), store.bucket, stallMs);
      try {
        await body(s3, relay);
      } finally {
        s3.close();
        await relay.allClosed();
        await relay.close();
      }
    };

    it('complete GETs one after another share one connection', () =>
      throughRelay(async (s3, relay) => {
        for (let i = 0; i < 5; i++) assert.equal((await collect(await s3.range('small', i * 100, 100))).length, 100);
        assert.equal(relay.total, 1);
        assert.equal(relay.open, 1, 'kept open for the next GET');
      }));

    it('an aborted GET closes its connection and stops', () =>
      throughRelay(async (s3, relay) => {
        const ac = new AbortController();
        const body = await s3.range('big', 0, big.length, ac.signal);
        await assert.rejects(
          (async () => {
            for await (const _ of body) ac.abort(new Error('client went away'));
          })(),
          /client went away/,
        );
        await relay.allClosed();
        assert.equal(s3.getsInFlight, 0);
        assert.ok(s3.bytesReceived < big.length, 'not read to the end');
      }));

    it('a GET aborted before its answer closes its connection', () =>
      throughRelay(async (s3, relay) => {
        const ac = new AbortController();
        const got = s3.range('big', 0, big.length, ac.signal);
        ac.abort(new Error('client went away'));
        await assert.rejects(got, /client went away/);
        await relay.allClosed();
        assert.equal(s3.getsInFlight, 0);
      }));

    it('an aborted rangeChunks closes its connection', () =>
      throughRelay(async (s3, relay) => {
        const ac = new AbortController();
        const got = s3.rangeChunks('big', 0, big.length, ac.signal);
        while (s3.bytesReceived === 0) await new Promise((r) => setImmediate(r));
        ac.abort(new Error('client went away'));
        await assert.rejects(got, /client went away/);
        await relay.allClosed();
        assert.equal(s3.getsInFlight, 0);
        assert.ok(s3.bytesReceived < big.length, 'not read to the end');
      }));

    it('a reader that stops early closes the connection', () =>
      throughRelay(async (s3, relay) => {
        const body = await s3.range('big', 0, big.length);
        for await (const _ of body) break;
        await relay.allClosed();
        assert.equal(s3.getsInFlight, 0);
      }));

    it('many GETs at once use at most MAX_SOCKETS connections', () =>
      throughRelay(async (s3, relay) => {
        const gets = Array.from({ length: MAX_SOCKETS * 2 }, (_, i) => s3.range('small', i * 10, 1000).then(collect));
        for (const [i, got] of (await Promise.all(gets)).entries()) assert.deepEqual(got, small.subarray(i * 10, i * 10 + 1000));
        assert.ok(relay.most <= MAX_SOCKETS, `${relay.most} connections at once`);
        assert.ok(relay.most > 1, 'GETs did run in parallel');
      }));

    it('a dropped connection is retried', () =>
      throughRelay(async (s3, relay) => {
        relay.dropNext = 1;
        assert.deepEqual(await collect(await s3.range('small', 0, 50)), small.subarray(0, 50));
        assert.equal(s3.requests, 2);
        assert.equal(relay.total, 2);
      }));

    it('an S3 that goes silent in the middle of an answer fails the read, not hangs it', { timeout: 60_000 }, () =>
      throughRelay(async (s3, relay) => {
        relay.stallAfter = 1 << 20;
        await assert.rejects(s3.rangeChunks('big', 0, big.length), /reading big .*S3 sent nothing for 0\.5 s in the middle of its answer/);
        await assert.rejects(
          (async () => {
            for await (const _ of await s3.range('big', 0, big.length));
          })(),
          /S3 sent nothing for 0\.5 s in the middle of its answer/,
        );
        assert.equal(s3.getsInFlight, 0);
      }, 500));

    it('an S3 that never answers fails the GET once the SDK-like retries are spent', { timeout: 60_000 }, () =>
      throughRelay(async (s3, relay) => {
        relay.stallAfter = 0;
        await assert.rejects(s3.rangeChunks('small', 0, 100), /S3 sent nothing for 0\.5 s in answer to a GET/);
        assert.equal(s3.requests, 3);
      }, 500));

    it('a reader slower than the timeout is not cut off: only S3\'s own silence counts', { timeout: 60_000 }, () =>
      throughRelay(async (s3) => {
        const parts: Uint8Array[] = [];
        let pauses = 0;
        for await (const c of await s3.range('big', 0, 4 << 20)) {
          parts.push(c);
          if (pauses < 3) {
            pauses++;
            await new Promise((r) => setTimeout(r, 1200)); // more than twice the timeout, bytes waiting
          }
        }
        assert.deepEqual(Buffer.concat(parts), big.subarray(0, 4 << 20));
      }, 500));
  });
});
