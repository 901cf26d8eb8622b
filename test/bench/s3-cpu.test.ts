// bench/s3-cpu.ts keeps working: it copies real store paths into a fresh
// scale-out store and reports the CPU of the copy and of each server it
// found from with-scaleout's (or the test helper's) files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { scaleoutEnv } from '../helpers/scaleout.js';
import { fixtureClosure } from '../helpers/nix.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

test('s3-cpu copies into a fresh scale-out store and reports every server', { timeout: 10 * 60_000 }, async () => {
  await scaleoutEnv(); // exports the services' settings for the child
  const fx = await fixtureClosure();
  const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
    const c = spawn(process.execPath, ['dist/bench/s3-cpu.js', ...Object.values(fx.byKey)], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.stderr.on('data', (d) => (text += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, text }));
  });
  assert.equal(out.code, 0, out.text);
  const m = /copy → S3 \+ PostgreSQL: [\d.]+ s wall; copy CPU [\d.]+ s .*servers CPU [\d.]+ s \((.*)\); (\d+) blobs sent/.exec(out.text);
  assert.ok(m, out.text);
  for (const server of ['mon.a', 'osd.0', 'rgw.a', 'postgres']) assert.match(m[1], new RegExp(`${server.replace('.', '\\.')} [\\d.]+`), m[1]);
  assert.ok(Number(m[2]) > 0, 'blobs were sent');
});
