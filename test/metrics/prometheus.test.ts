// A real Prometheus scrapes a real daemon (on a file:// store, with the
// binary cache on) during a real `nix-castore copy` and a real Nix
// substitution; the counters read back through Prometheus' query API must
// match what happened. promtool finds nothing wrong with the exposition, and
// `nix-castore stats` (through the daemon and on its directory) agrees with
// Nix's own NAR sizes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFixture, deleteCopyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixPathInfo, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';
import { startPrometheus, waitFor, type Prometheus } from './prometheus-helpers.js';

const SALT = 'metrics-prometheus';

let fx: CopyFixture;
let tmp: string;
let daemon: DaemonProcess;
let cacheUrl: string;
let prom: Prometheus;
let narBytes = 0;
let copyReport: { uploaded: string[]; blobsSent: number };
let actionsDone = 0;

async function deleteFromNixStore(): Promise<void> {
  const present = [fx.attrsJsonFile, fx.legacyClosureFile, ...fx.closure].filter((p) => existsSync(p));
  if (present.length === 0) return;
  await runNix('nix-store', ['--delete', ...present]).catch(() => runNix('nix-store', ['--delete', '--ignore-liveness', ...present]));
}

/** The one value of an instant query (0 when the series does not exist). */
async function value(q: string): Promise<number> {
  const r = await prom.query(q);
  assert.ok(r.length <= 1, `${q}: ${JSON.stringify(r)}`);
  return r[0]?.value ?? 0;
}

before(async () => {
  fx = await copyFixture(SALT);
  for (const i of await nixPathInfo(fx.closure)) narBytes += i.narSize!;
  tmp = await mkdtemp(join(tmpdir(), 'metrics-prom-'));
  // --local-files none: the 100 MiB file crosses the socket (a daemon on this machine would read it itself).
  daemon = await startDaemonProcess({ args: ['--data', join(tmp, 'data'), '--http', '127.0.0.1:0', '--stats-interval', '1', '--local-files', 'none'] });
  cacheUrl = await cacheUrlOf(daemon);
  prom = await startPrometheus(join(tmp, 'prometheus'), { castore: { target: new URL(cacheUrl).host } });

  const copy = await runCli(['copy', '--json', '--store', daemon.addr, fx.top]);
  assert.equal(copy.code, 0, copy.stderr);
  copyReport = JSON.parse(copy.stdout);
  assert.equal(copyReport.uploaded.length, fx.closure.length, 'a fresh closure: every path uploaded');

  await deleteFromNixStore();
  const opts = ['--option', 'substituters', cacheUrl, '--option', 'require-sigs', 'false', '--option', 'narinfo-cache-negative-ttl', '0'];
  await runNix('nix-store', ['-r', fx.top, ...opts]);
  for (const p of fx.closure) assert.ok(existsSync(p), `${p} substituted`);
  actionsDone = Date.now();
});

after(async () => {
  await prom?.stop();
  await daemon?.stop();
  await deleteCopyFixture(SALT);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('Prometheus scraping the daemon', () => {
  it('reads back what the copy and the substitution did', async () => {
    await prom.scrapedAfter('castore', actionsDone);
    assert.equal(await value('up{job="castore"}'), 1);
    const paths = fx.closure.length;

    // Writes: one PathInfo per path copied, the blobs the copy sent.
    assert.equal(await value('nix_castore_pathinfos_written_total'), paths);
    assert.equal(await value('nix_castore_blobs_written_total'), copyReport.blobsSent);
    assert.ok((await value('nix_castore_directories_written_total')) > 0);

    // gRPC, both transports in one metric: PathInfo and Directory Puts are
    // served by grpc-js, blob Puts (the 100 MiB file) and batches by the lean path.
    const handled = (svc: string, m: string, code = 'OK') =>
      value(`nix_castore_grpc_server_handled_total{service="${svc}",method="${m}",code="${code}"}`);
    assert.equal(await handled('tvix.store.v1.PathInfoService', 'Put'), paths);
    assert.equal(await value('nix_castore_grpc_server_handling_seconds_count{service="tvix.store.v1.PathInfoService",method="Put"}'), paths);
    assert.ok((await handled('tvix.castore.v1.DirectoryService', 'Put')) > 0);
    assert.ok((await handled('tvix.castore.v1.BlobService', 'Put')) >= 1, 'the 100 MiB blob went over the lean path');
    assert.ok((await handled('nixcastore.v1.BlobBatchService', 'Put')) >= 1);
    assert.equal(await handled('tvix.store.v1.PathInfoService', 'Get', 'NOT_FOUND'), paths, 'the copy looked each path up first');

    // Nix fetched every NAR once.
    assert.equal(await value('nix_castore_http_requests_total{route="nar",status="200"}'), paths);
    assert.ok((await value('nix_castore_http_requests_total{route="narinfo",status="200"}')) >= paths);
    assert.equal(await value('nix_castore_http_request_duration_seconds_count{route="nar"}'), paths);

    // Bytes on the wire: at least the blobs in, at least the NARs out.
    assert.ok((await value('nix_castore_received_bytes_total{listener="grpc"}')) >= 100 * 1024 * 1024);
    assert.ok((await value('nix_castore_sent_bytes_total{listener="http"}')) >= narBytes);

    // Process metrics from the library's defaults.
    assert.ok((await value('nix_castore_process_resident_memory_bytes')) > 0);
  });

  it('the store gauges, refreshed in the background, match what Nix says the closure is', async () => {
    const from = actionsDone / 1000;
    await waitFor('a store count that started after the copy, scraped', async () => {
      const r = await prom.query(`nix_castore_store_stats_last_refresh_timestamp_seconds > ${from}`);
      return r.length ? true : undefined;
    }, prom.log);
    assert.equal(await value('nix_castore_store_objects{kind="pathinfo"}'), fx.closure.length);
    assert.equal(await value('nix_castore_store_nar_bytes'), narBytes);
    assert.ok((await value('nix_castore_store_objects{kind="blob"}')) > 0);
    assert.ok((await value('nix_castore_store_stored_bytes{kind="blob"}')) >= 100 * 1024 * 1024);
    assert.equal(await value('nix_castore_store_stats_refresh_failures_total'), 0);
    // The README's deduplication expression.
    const stored = (await value('nix_castore_store_stored_bytes{kind="blob"}')) + (await value('nix_castore_store_stored_bytes{kind="directory"}'));
    assert.equal(await value('nix_castore_store_nar_bytes / sum without(kind) (nix_castore_store_stored_bytes)'), narBytes / stored);
  });

  it('promtool check metrics finds no problem in the exposition', async () => {
    const res = await request(cacheUrl, '/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: res.body });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no lint findings');
  });

  it('nix-castore stats agrees, through the daemon and on its directory', async () => {
    for (const store of [daemon.addr, `file://${join(tmp, 'data')}`]) {
      const r = await runCli(['stats', '--json', '--store', store]);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout);
      assert.equal(s.pathInfos, fx.closure.length, store);
      assert.equal(s.narBytes, narBytes, store);
      assert.equal(s.storedBytes, s.blobBytes + s.directoryBytes);
      assert.equal(s.dedupRatio, narBytes / s.storedBytes);
    }
  });
});
