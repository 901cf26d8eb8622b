// protos/snix/** must be exactly what scripts/gen-snix-protos.mjs makes
// from protos/tvix/**; rerun the script after editing a tvix proto.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

function* walk(dir: string): Generator<string> {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}

it('protos/snix is generated from protos/tvix', async () => {
  const { toSnix } = (await import(join(root, 'scripts/gen-snix-protos.mjs'))) as { toSnix(s: string): string };
  const tvix = join(root, 'protos/tvix');
  const files = [...walk(tvix)];
  assert.equal(files.length, 5);
  for (const f of files) {
    const snix = join(root, 'protos/snix', relative(tvix, f));
    assert.equal(readFileSync(snix, 'utf8'), toSnix(readFileSync(f, 'utf8')), `${snix} is stale: run node scripts/gen-snix-protos.mjs`);
  }
});
