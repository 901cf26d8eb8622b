// The daemon stops cleanly on SIGTERM/SIGINT, removes its socket, and a
// restart on the same data directory serves what was stored before.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  it(`stops on ${signal} and keeps its data across restarts`, async () => {
    const data = await mkdtemp(join(tmpdir(), 'castore-life-'));
    try {
      const first = await startDaemonProcess({ dataDir: data });
      const s1 = openStore(sameAddr(first.addr));
      const digest = await putBytes(s1.blobs, Buffer.from('survives a restart'));
      await s1.close();
      const exited = new Promise<number | null>((r) => first.child.once('exit', r));
      first.child.kill(signal);
      assert.equal(await exited, 0, first.stderr());
      assert.match(first.stderr(), new RegExp(`${signal}, shutting down`));
      assert.equal(existsSync(first.socket), false, 'socket removed');
      await first.stop();

      const second = await startDaemonProcess({ dataDir: data });
      const s2 = openStore(sameAddr(second.addr));
      assert.equal((await readAll(s2.blobs, digest))?.toString(), 'survives a restart');
      await s2.close();
      await second.stop();
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });
}
