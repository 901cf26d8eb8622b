// The S3 SDK and the PostgreSQL driver are loaded only when an address
// names them: they took about 200 ms of every copy's and daemon's start
// (and of each post-build hook that pushes).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../../src/', import.meta.url));

/** Modules under node_modules that importing `modules` (relative to dist/src) loads through CommonJS. */
function loadedPackages(modules: string[]): string[] {
  const script = `
    for (const m of ${JSON.stringify(modules)}) await import(${JSON.stringify(dist)} + m);
    const { createRequire } = await import('node:module');
    const cache = createRequire(import.meta.url).cache;
    const names = new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/)?.[1]).filter(Boolean));
    console.log(JSON.stringify([...names].sort()));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('lazy imports', () => {
  it('copy, daemon and nar commands load neither the S3 SDK nor pg until an address needs them', () => {
    const pkgs = loadedPackages(['cli/copy-command.js', 'cli/daemon-command.js', 'cli/nar-command.js', 'cli/drain-command.js']);
    assert.ok(pkgs.includes('@grpc/grpc-js'), `the probe sees CommonJS packages: ${pkgs.join(' ')}`);
    assert.deepEqual(pkgs.filter((p) => p.startsWith('@aws-sdk/') || p.startsWith('@smithy/') || p === 'pg'), []);
  });

  it('copy, hook and drain into a daemon load no grpc-js: blobs, directories and PathInfo go over the lean HTTP/2 client', () => {
    const script = `
      for (const m of ['cli/copy-command.js', 'cli/hook-command.js', 'cli/drain-command.js', 'upload/copy.js']) await import(${JSON.stringify(dist)} + m);
      const { openStore } = await import(${JSON.stringify(dist)} + 'addr/open.js');
      const addr = 'grpc+unix:///nonexistent/daemon.sock';
      const store = openStore({ blob: addr, directory: addr, pathInfo: addr });
      const { createRequire } = await import('node:module');
      const cache = createRequire(import.meta.url).cache;
      console.log(JSON.stringify([...new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/)?.[1]).filter(Boolean))].sort()));
      await store.close();`;
    const pkgs = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
    assert.ok(pkgs.includes('@napi-rs/blake-hash'), `the probe sees CommonJS packages: ${pkgs.join(' ')}`);
    assert.ok(!pkgs.includes('@grpc/grpc-js'), pkgs.join(' '));
  });

  it("a copy's upload thread loads no grpc-js: it talks over the lean HTTP/2 client, and the daemon waits for its start", () => {
    // The thread itself, started as a copy starts it, reports what its isolate loaded.
    const script = `
      const { Worker } = await import('node:worker_threads');
      const url = ${JSON.stringify(new URL('upload/upload-worker.js', `file://${dist}`).href)};
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads');
        import('\${url}').then(() => parentPort.postMessage(Object.keys(require.cache).map((k) => k.match(/node_modules\\\\/((?:@[^/]+\\\\/)?[^/]+)/)?.[1]).filter(Boolean)));
      \`, { eval: true, execArgv: [], workerData: { addr: 'grpc+unix:///nonexistent/daemon.sock', concurrency: 1, retry: { attempts: 1, baseMs: 1, maxMs: 1 } } });
      w.once('message', (pkgs) => { console.log(JSON.stringify([...new Set(pkgs)].sort())); w.terminate(); });
      w.once('error', (err) => { console.error(err); process.exit(1); });`;
    const pkgs = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
    assert.ok(pkgs.includes('@napi-rs/blake-hash'), `the probe sees CommonJS packages: ${pkgs.join(' ')}`);
    assert.ok(!pkgs.includes('@grpc/grpc-js'), pkgs.join(' '));
  });

  it("the daemon loads prom-client's metric classes, not its default collectors, Pushgateway or cluster code, until /metrics is served", () => {
    const script = `
      await import(${JSON.stringify(dist)} + 'cli/daemon-command.js');
      const { createRequire } = await import('node:module');
      const cache = createRequire(import.meta.url).cache;
      const prom = () => Object.keys(cache).map((k) => k.match(/node_modules\\/prom-client\\/(.*)$/)?.[1]).filter(Boolean);
      const before = prom();
      (await import(${JSON.stringify(dist)} + 'metrics/metrics.js')).enableProcessMetrics();
      console.log(JSON.stringify([before, prom()]));`;
    const [before, after] = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[][];
    assert.ok(before.includes('lib/counter.js'), before.join(' '));
    for (const heavy of ['index.js', 'lib/defaultMetrics.js', 'lib/pushgateway.js', 'lib/cluster.js']) assert.ok(!before.includes(heavy), `${heavy} loaded at start`);
    assert.ok(after.includes('lib/defaultMetrics.js'), 'loaded once process metrics are enabled');
  });

  it('an S3 store loads the SDK when first used', () => {
    const script = `
      const { S3Objects } = await import(${JSON.stringify(dist)} + 'scaleout/s3-objects.js');
      const { createRequire } = await import('node:module');
      const cache = createRequire(import.meta.url).cache;
      const sdk = () => Object.keys(cache).some((k) => k.includes('@aws-sdk/client-s3'));
      const s3 = new S3Objects({ bucket: 'b', prefix: '', endpoint: 'http://127.0.0.1:9', forcePathStyle: true });
      const before = sdk();
      await s3.client();
      console.log(JSON.stringify([before, sdk()]));
      s3.close();`;
    assert.deepEqual(JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })), [false, true]);
  });
});
