// Issue 18: the number of concurrent streams per gRPC connection is
// configurable (--max-concurrent-streams, its environment variable and
// config key) and announced in the daemon's HTTP/2 SETTINGS, which both
// gRPC paths share; the default stays 1000.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { connectUnix } from '../helpers/h2-flood.js';
import { Writer } from '../helpers/grpc-writes.js';

/** SETTINGS_MAX_CONCURRENT_STREAMS as the daemon announces it. */
async function announced(socket: string): Promise<number | undefined> {
  const session = connectUnix(socket);
  try {
    const settings = await new Promise<{ maxConcurrentStreams?: number }>((r) => session.once('remoteSettings', r));
    return settings.maxConcurrentStreams;
  } finally {
    session.destroy();
  }
}

it('the default is 1000', async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://'] });
  try {
    assert.equal(await announced(d.socket), 1000);
  } finally {
    await d.stop();
  }
});

it('--max-concurrent-streams sets it; calls beyond it wait for a free stream and succeed', { timeout: 60_000 }, async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://', '--max-concurrent-streams', '3'] });
  const w = new Writer(d.socket);
  try {
    assert.equal(await announced(d.socket), 3);
    const puts = await Promise.all(Array.from({ length: 20 }, (_, i) => w.putBlob(Buffer.from(`blob ${i}`))));
    assert.deepEqual(new Set(puts.map((p) => p.name)), new Set(['OK']));
  } finally {
    w.close();
    await d.stop();
  }
});

it('the environment and the config file set it too (the flag wins)', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'castore-streams-'));
  try {
    const env = { ...process.env, NIX_CASTORE_MAX_CONCURRENT_STREAMS: '17' };
    let d = await startDaemonProcess({ args: ['--store', 'memory://'], env });
    try {
      assert.equal(await announced(d.socket), 17);
    } finally {
      await d.stop();
    }
    await writeFile(join(dir, '.nix-castorerc.json'), JSON.stringify({ maxConcurrentStreams: 23 }));
    d = await startDaemonProcess({ args: ['--store', 'memory://'], cwd: dir });
    try {
      assert.equal(await announced(d.socket), 23);
    } finally {
      await d.stop();
    }
    d = await startDaemonProcess({ args: ['--store', 'memory://', '--max-concurrent-streams', '5'], env, cwd: dir });
    try {
      assert.equal(await announced(d.socket), 5);
    } finally {
      await d.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
