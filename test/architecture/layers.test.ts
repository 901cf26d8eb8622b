// The layer rules (.dependency-cruiser.cjs) hold on src/, and an upward
// import fails them with a message that names the rule and says what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, appendFile, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const depcruise = join(repo, 'node_modules/.bin/depcruise');

function cruise(cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(depcruise, ['--config', '.dependency-cruiser.cjs', '--output-type', 'err-long', 'src'], { cwd }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

async function copyOfRepo(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'layers-'));
  for (const f of ['src', 'tsconfig.json', '.dependency-cruiser.cjs']) await cp(join(repo, f), join(dir, f), { recursive: true });
  return dir;
}

test('src/ follows the layer rules', async () => {
  const r = await cruise(repo);
  assert.equal(r.code, 0, r.out);
});

test('an upward import (castore -> scaleout) fails, naming the rule', async (t) => {
  const dir = await copyOfRepo();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await appendFile(join(dir, 'src/castore/digest.ts'), "\nimport '../scaleout/addr.js';\n");
  const r = await cruise(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /model-imports-upwards: src\/castore\/digest\.ts → src\/scaleout\/addr\.ts/);
  assert.match(r.out, /must not\s+import the layers above it/);
});

test('two independent folders of a layer may not import each other', async (t) => {
  const dir = await copyOfRepo();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await appendFile(join(dir, 'src/grpc/address.ts'), "\nimport '../scaleout/addr.js';\n");
  const r = await cruise(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /grpc-imports-its-layer/);
});

test('a folder that belongs to no layer is refused', async (t) => {
  const dir = await copyOfRepo();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'src/misc'));
  await writeFile(join(dir, 'src/misc/x.ts'), "export const x = 1;\n");
  const r = await cruise(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /folder-without-a-layer/);
});

test('an import loop between modules is refused', async (t) => {
  const dir = await copyOfRepo();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'src/util/loop-a.ts'), "import { b } from './loop-b.js';\nexport const a = () => b;\n");
  await writeFile(join(dir, 'src/util/loop-b.ts'), "import { a } from './loop-a.js';\nexport const b = () => a;\n");
  const r = await cruise(dir);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /no-circular/);
});
