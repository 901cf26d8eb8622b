// S3 going away under a running scale-out daemon: a NAR requested
// meanwhile gets 503 (the backend is out of reach, retry), as a narinfo
// does when PostgreSQL is, not 500 (a fault of the daemon), and is served
// again once S3 is back, without a restart. The outage is a TCP relay in
// front of the real radosgw, closed and reopened on the same port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { TcpRelay } from '../helpers/tcp-relay.js';
import { freshScaleoutAddr, scaleoutEnv } from '../helpers/scaleout.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf } from '../http/http-helpers.js';

describe('scale-out daemon while S3 is unreachable', () => {
  it('a NAR gets 503 meanwhile, and is served once S3 is back', async () => {
    const env = await scaleoutEnv();
    const s = await freshScaleoutAddr('s3-outage');
    const endpoint = new URL(env.s3Endpoint);
    const relay = new TcpRelay(endpoint.hostname, Number(endpoint.port));
    await relay.open();
    const addr = s.addr.replace(encodeURIComponent(env.s3Endpoint), encodeURIComponent(`http://127.0.0.1:${relay.port}`));
    assert.notEqual(addr, s.addr);
    const tmp = await mkdtemp(join(tmpdir(), 's3-outage-'));
    const d = await startDaemonProcess({ args: ['--store', addr, '--http', '127.0.0.1:0'] });
    try {
      await writeFile(join(tmp, 'f'), randomBytes(100_000));
      const path = (await runNix('nix-store', ['--add', join(tmp, 'f')])).stdout.toString().trim();
      const copied = await runCli(['copy', '--store', d.addr, path]);
      assert.equal(copied.code, 0, copied.stderr);
      const cache = await cacheUrlOf(d);
      const narinfo = await (await fetch(`${cache}/${path.slice(11, 43)}.narinfo`)).text();
      const url = /^URL: (\S+)$/m.exec(narinfo)?.[1];
      assert.ok(url, narinfo);

      await relay.cut();
      const meanwhile = await fetch(`${cache}/${url}`);
      const why = await meanwhile.text();
      assert.equal(meanwhile.status, 503, why);
      assert.match(why, /cannot reach s3:\/\//);

      await relay.open();
      const after = await fetch(`${cache}/${url}`);
      assert.equal(after.status, 200);
      await after.arrayBuffer();
    } finally {
      await d.stop();
      await relay.cut();
      await rm(tmp, { recursive: true, force: true });
      await s.drop();
    }
  });
});
