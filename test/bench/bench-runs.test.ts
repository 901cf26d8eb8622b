// `npm run bench` must keep working as the product changes (a new default,
// zstd serving, once broke its HTTP part without any test noticing). Every
// part runs once at a tiny size; nothing here looks at the figures, only
// that each part finishes and reports its rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

function runBench(env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['dist/bench/run.js'], { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out }));
  });
}

test('every part of npm run bench runs to its summary rows', { timeout: 20 * 60_000 }, async () => {
  const r = await runBench({ BENCH_SIZE_MIB: '16', BENCH_ROUNDS: '1' });
  assert.equal(r.code, 0, r.out.slice(-4000));
  const summary = r.out.slice(r.out.lastIndexOf('Summary —'));
  for (const row of [
    'one-pass floor',
    'Blob Put',
    'queued post-build hook',
    'NAR serving over HTTP',
    'nix copy --to http://castore',
    '`copy` → S3 + PostgreSQL',
    'gc of closure',
  ]) {
    assert.ok(summary.includes(row), `the summary has no row "${row}":\n${summary}`);
  }
});
