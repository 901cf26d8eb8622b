// PostgreSQL going away under a running scale-out daemon (a restart, a
// failover, a network cut): requests meanwhile fail as UNAVAILABLE (HTTP
// 503), which clients retry, not as DATA_LOSS (500), and the daemon serves
// again once the database is back, without a restart of its own; a copy
// meanwhile retries from its first call. The
// outage is a TCP relay in front of the real PostgreSQL, closed and
// reopened on the same port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { TcpRelay } from '../helpers/tcp-relay.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { CastoreError } from '../../src/castore/errors.js';

/** How `p` failed: the error kind and message. */
async function failure(p: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { kind: err instanceof CastoreError ? err.kind : 'not a CastoreError', message: String(err) };
  }
  return { kind: 'none', message: 'it succeeded' };
}

describe('scale-out daemon while PostgreSQL is unreachable', () => {
  it('answers UNAVAILABLE and HTTP 503 meanwhile, and serves again once it is back', async () => {
    const s = await freshScaleoutAddr('pg-outage');
    const pgUrl = new URL(s.pgUrl);
    const relay = new TcpRelay(pgUrl.hostname, Number(pgUrl.port));
    await relay.open();
    const viaRelay = new URL(s.pgUrl);
    viaRelay.hostname = '127.0.0.1';
    viaRelay.port = String(relay.port);
    const addr = s.addr.replace(encodeURIComponent(s.pgUrl), encodeURIComponent(viaRelay.toString()));
    assert.notEqual(addr, s.addr);
    const d = await startDaemonProcess({ args: ['--store', addr, '--http', '127.0.0.1:0'] });
    const cache = /Nix binary cache on (http:\/\/[^ ]+) /.exec(d.stderr())?.[1];
    assert.ok(cache, d.stderr());
    const store = openStore(sameAddr(d.addr));
    const tmp = await mkdtemp(join(tmpdir(), 'pg-outage-'));
    await writeFile(join(tmp, 'f'), randomBytes(1000));
    const path = (await runNix('nix-store', ['--add', join(tmp, 'f')])).stdout.toString().trim();
    const digest = new Uint8Array(20).fill(7);
    const narinfo = async () => (await fetch(`${cache}/${'a'.repeat(32)}.narinfo`)).status;
    try {
      assert.equal(await store.pathInfos.get(digest), undefined);
      assert.equal(await narinfo(), 404);

      await relay.cut();
      const f = await failure(store.pathInfos.get(digest));
      assert.equal(f.kind, 'unavailable', f.message);
      assert.match(f.message, /PostgreSQL at postgres:\/\/[^ ]+ is unavailable: /);
      assert.equal(await narinfo(), 503);
      // A copy meanwhile retries, from its first call on, and does not ask
      // whether a daemon is running there: one answered.
      const copy = await runCli(['copy', '--store', d.addr, path]);
      assert.equal(copy.code, 1, copy.stderr);
      assert.match(copy.stderr, /retry 1\/\d+ .*\n(.*\n)*.*is unavailable: /);
      assert.doesNotMatch(copy.stderr, /is a daemon running there/);

      await relay.open();
      assert.equal(await store.pathInfos.get(digest), undefined);
      assert.equal(await narinfo(), 404);
    } finally {
      await store.close();
      await d.stop();
      await rm(tmp, { recursive: true, force: true });
      await relay.cut();
      await s.drop();
    }
  });

  it('a daemon started while PostgreSQL refuses exits 1 naming it, without asking whether a daemon runs there', async () => {
    const s = await freshScaleoutAddr('pg-refused');
    const pgUrl = new URL(s.pgUrl);
    const relay = new TcpRelay(pgUrl.hostname, Number(pgUrl.port));
    await relay.open();
    await relay.cut();
    const viaRelay = new URL(s.pgUrl);
    viaRelay.hostname = '127.0.0.1';
    viaRelay.port = String(relay.port);
    const addr = s.addr.replace(encodeURIComponent(s.pgUrl), encodeURIComponent(viaRelay.toString()));
    const tmp = await mkdtemp(join(tmpdir(), 'pg-refused-'));
    try {
      const r = await runCli(['daemon', '--listen', `unix:${join(tmp, 'd.sock')}`, '--store', addr]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /PostgreSQL at postgres:\/\/\S+: connect ECONNREFUSED/);
      assert.doesNotMatch(r.stderr, /is a daemon running there/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
      await s.drop();
    }
  });
});
