// /metrics on its own listener (daemon --metrics, drain --watch --metrics)
// and on the binary cache: who may read it, what else is refused, and the
// hook queue's metrics from a real drain of a real spool.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';
import { enqueue } from '../../src/upload/spool.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { acquireClient } from '../../src/grpc/channel.js';
import { waitFor } from './prometheus-helpers.js';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'metrics-endpoint-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

async function metricsUrlOf(log: () => string): Promise<string> {
  return waitFor('the metrics URL on stderr', async () => /metrics on (http:\/\/\S+)\/metrics/.exec(log())?.[1], log, 15_000);
}

/** Value of a sample line in a text exposition, undefined if absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function get(url: string, path: string, headers: Record<string, string> = {}, method = 'GET') {
  return fetch(url + path, { method, headers });
}

describe('the metrics endpoint', () => {
  let d: DaemonProcess;
  const token = 'metrics-test-token';
  let tokenFile: string;
  before(async () => {
    tokenFile = join(tmp, 'token');
    await writeFile(tokenFile, token + '\n');
  });
  after(() => d?.stop());

  it('daemon --metrics ADDR serves /metrics alone, readable without the write token', async () => {
    d = await startDaemonProcess({ args: ['--store', 'memory://', '--metrics', '127.0.0.1:0', '--auth-token-file', tokenFile] });
    const url = await metricsUrlOf(d.stderr);
    const ok = await get(url, '/metrics');
    assert.equal(ok.status, 200);
    const text = await ok.text();
    assert.match(text, /^# HELP nix_castore_grpc_server_handled_total /m);
    assert.ok(sample(text, 'nix_castore_process_cpu_user_seconds_total')! >= 0, 'process metrics');
    assert.equal((await get(url, '/')).status, 404);
    assert.equal((await get(url, '/nix-cache-info')).status, 404);
    assert.equal((await get(url, '/metrics', {}, 'POST')).status, 405);
  });

  it('--metrics-need-token puts /metrics behind the token, on --metrics and on --http', async () => {
    const e = await startDaemonProcess({
      args: ['--store', 'memory://', '--metrics', '127.0.0.1:0', '--http', '127.0.0.1:0', '--auth-token-file', tokenFile, '--metrics-need-token'],
    });
    try {
      for (const url of [await metricsUrlOf(e.stderr), await cacheUrlOf(e)]) {
        assert.equal((await get(url, '/metrics')).status, 401, url);
        assert.equal((await get(url, '/metrics', { authorization: 'Bearer wrong' })).status, 401, url);
        assert.equal((await get(url, '/metrics', { authorization: `Bearer ${token}` })).status, 200, url);
      }
    } finally {
      await e.stop();
    }
  });

  it('on --http with a token, /metrics stays open while the cache needs it', async () => {
    const e = await startDaemonProcess({ args: ['--store', 'memory://', '--http', '127.0.0.1:0', '--auth-token-file', tokenFile] });
    try {
      const url = await cacheUrlOf(e);
      assert.equal((await request(url, '/nix-cache-info')).status, 401);
      const m = await request(url, '/metrics');
      assert.equal(m.status, 200);
      // The 401 above is counted under its route.
      assert.equal(sample(m.body.toString(), 'nix_castore_http_requests_total{route="nix-cache-info",status="401"}'), 1);
    } finally {
      await e.stop();
    }
  });

  it('refuses --metrics-need-token without a token, and a bad --metrics address', async () => {
    const sock = `unix:${join(tmp, 'never.sock')}`;
    const r1 = await runCli(['daemon', '--store', 'memory://', '--listen', sock, '--metrics', '0', '--metrics-need-token']);
    assert.equal(r1.code, 2);
    assert.match(r1.stderr, /--metrics-need-token needs --auth-token-file/);
    const r0 = await runCli(['daemon', '--store', 'memory://', '--listen', sock, '--auth-token-file', tokenFile, '--metrics-need-token']);
    assert.equal(r0.code, 2);
    assert.match(r0.stderr, /--metrics-need-token applies to \/metrics: give --metrics ADDR or --http ADDR too/);
    const r2 = await runCli(['daemon', '--store', 'memory://', '--listen', sock, '--metrics', 'nowhere']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /--metrics: HTTP address "nowhere"/);
    const r3 = await runCli(['drain', '--spool', tmp, '--store', 'memory://', '--metrics', '0']);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /--metrics goes with --watch/);
  });
});

describe('gRPC status labels', () => {
  it('a blob Put the client resets is CANCELLED; a method the daemon lacks is unknown/unknown', async () => {
    const d = await startDaemonProcess({ args: ['--store', 'memory://', '--metrics', '127.0.0.1:0'] });
    const store = openStore(sameAddr(d.addr));
    const client = acquireClient(d.addr);
    try {
      const url = await metricsUrlOf(d.stderr);
      const w = store.blobs.put();
      // More than the client queues unsent (SEND_AHEAD): the last write waits until bytes went out, so the daemon has seen the Put before it is reset.
      for (let i = 0; i < 4; i++) await w.write(Buffer.alloc(1 << 20, 1));
      await w.abort();
      await new Promise<void>((resolve) =>
        client.client.makeUnaryRequest('/no.such.Service/Method', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), () => resolve()),
      );
      const text = await waitFor('the cancelled Put counted', async () => {
        const t = await (await get(url, '/metrics')).text();
        return sample(t, 'nix_castore_grpc_server_handled_total{service="tvix.castore.v1.BlobService",method="Put",code="CANCELLED"}') === 1 ? t : undefined;
      }, d.stderr);
      assert.equal(sample(text, 'nix_castore_grpc_server_handled_total{service="unknown",method="unknown",code="UNIMPLEMENTED"}'), 1);
      assert.ok(!text.includes('no.such.Service'), 'a client cannot add label values');
    } finally {
      client.release();
      await store.close();
      await d.stop();
    }
  });
});

describe('drain --watch --metrics: the hook queue', () => {
  it('exposes queue depth, the oldest entry\'s age and drain results', async () => {
    const spool = join(tmp, 'spool');
    const file = join(tmp, 'drained.txt');
    await writeFile(file, `drained by the metrics test ${Date.now()} ${Math.random()}\n`);
    const good = (await runNix('nix-store', ['--add', file])).stdout.toString().trim();
    await enqueue(spool, { outPaths: [good] });
    // Never valid: fails, is rescheduled with backoff and stays queued.
    await enqueue(spool, { outPaths: ['/nix/store/00000000000000000000000000000000-never-built'] });
    const queuedBy = Date.now();

    const child = spawn(process.execPath, [CLI, 'drain', '--watch', '--spool', spool, '--store', 'memory://', '--metrics', '127.0.0.1:0'], {
      env: nixEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr!.on('data', (c) => (log += c));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const url = await metricsUrlOf(() => log);
      const text = await waitFor('both entries tried', async () => {
        const t = await (await get(url, '/metrics')).text();
        const tried = sample(t, 'nix_castore_hook_drain_entries_total{result="failed"}')! + sample(t, 'nix_castore_hook_drain_entries_total{result="uploaded"}')!;
        return tried >= 2 ? t : undefined;
      }, () => log);
      const asked = Date.now();
      const again = await (await get(url, '/metrics')).text();
      assert.equal(sample(text, 'nix_castore_hook_drain_entries_total{result="uploaded"}'), 1, log);
      assert.ok(sample(text, 'nix_castore_hook_drain_entries_total{result="failed"}')! >= 1, log);
      assert.equal(sample(again, 'nix_castore_hook_queue_entries'), 1, 'the failed entry stays queued');
      const age = sample(again, 'nix_castore_hook_queue_oldest_age_seconds')!;
      assert.ok(age >= (asked - queuedBy) / 1000, `oldest entry's age ${age}`);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
