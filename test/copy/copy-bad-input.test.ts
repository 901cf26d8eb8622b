// Malformed closure inputs: each makes `copy` exit 2 with a message naming
// the problem, before anything is uploaded (the target store stays empty).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileAddr } from '../../src/addr/parse.js';
import { runCli } from './run-cli.js';

const P1 = '/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-one';
const P2 = '/nix/store/0c5b8vw40dy178xlpddw65q9gf1h2186-two';
const H = 'sha256:11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila';
const entry = (over: Record<string, unknown> = {}) => ({ path: P1, narHash: H, narSize: 120, references: [], closureSize: 120, ...over });
const attrs = (closure: unknown) => JSON.stringify({ closure });

// [label, flag, file contents, expected message]
const cases: [string, string, string, RegExp][] = [
  ['not JSON', '--attrs', '{"closure": [', /JSON/i],
  ['no closure key', '--attrs', JSON.stringify({ outputs: {} }), /closure/],
  ['closure is not an array', '--attrs', attrs({ a: 1 }), /array/i],
  ['an entry that is not an object', '--attrs', attrs([42]), /closure\[0\]/],
  ['missing path', '--attrs', attrs([{ narHash: H, narSize: 1, references: [] }]), /path/],
  ['missing narHash', '--attrs', attrs([{ path: P1, narSize: 1, references: [] }]), /narHash/],
  ['missing narSize', '--attrs', attrs([{ path: P1, narHash: H, references: [] }]), /narSize/],
  ['missing references', '--attrs', attrs([{ path: P1, narHash: H, narSize: 1 }]), /references/],
  ['narSize as a string', '--attrs', attrs([entry({ narSize: '120' })]), /narSize/],
  ['negative narSize', '--attrs', attrs([entry({ narSize: -1 })]), /narSize/],
  ['fractional narSize', '--attrs', attrs([entry({ narSize: 1.5 })]), /narSize/],
  ['absurd narSize', '--attrs', attrs([entry({ narSize: 2 ** 60 })]), /narSize/],
  ['narHash with a bad nix32 char', '--attrs', attrs([entry({ narHash: 'sha256:e1vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila' })]), /narHash/],
  ['narHash of the wrong length', '--attrs', attrs([entry({ narHash: 'sha256:11vm2x1aj' })]), /narHash/],
  ['md5 narHash', '--attrs', attrs([entry({ narHash: 'md5:0123456789abcdfghijklmnpqr' })]), /narHash/],
  ['a path outside /nix/store', '--attrs', attrs([entry({ path: '/tmp/00bgd045z0d4icpbc2yyz4gx48ak44la-one' })]), /\/nix\/store/],
  ['a sub-path', '--attrs', attrs([entry({ path: `${P1}/bin` })]), /path/],
  ['a bad store-path hash', '--attrs', attrs([entry({ path: '/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-one' })]), /path/],
  ['a reference outside the set', '--attrs', attrs([entry({ references: [P2] })]), /0c5b8vw40dy178xlpddw65q9gf1h2186-two/],
  ['a duplicate entry', '--attrs', attrs([entry(), entry()]), /duplicate/i],
  ['legacy: non-numeric count', '--closure-file', `${P1}\n\nabc\n`, /count|number/i],
  ['legacy: truncated', '--closure-file', `${P1}\n\n2\n${P1}\n`, /truncated|end|missing|expected/i],
  ['legacy: not a store path', '--closure-file', `/etc/passwd\n\n0\n`, /\/etc\/passwd/],
  ['path-info: valid false', '--path-info', JSON.stringify([{ path: P1, valid: false }]), /valid/],
  ['path-info: SRI hash of the wrong size', '--path-info', JSON.stringify([{ path: P1, narHash: 'sha256-AAAA', narSize: 1, references: [] }]), /narHash/],
];

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'copy-bad-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

describe('copy refuses malformed closure inputs with exit 2, uploading nothing', () => {
  assert.ok(cases.length >= 15);
  cases.forEach(([label, flag, contents, message], i) => {
    it(label, async () => {
      const file = join(tmp, `input-${i}`);
      await writeFile(file, contents);
      const storeDir = join(tmp, `store-${i}`);
      const r = await runCli(['copy', '--store', fileAddr(storeDir), flag, file]);
      assert.equal(r.code, 2, `exit 2 for ${label}:\n${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, new RegExp(file.replace(/[/.]/g, '\\$&')), 'the message names the file');
      assert.ok(!existsSync(storeDir) || (await readdir(storeDir)).length === 0, 'nothing written to the store');
    });
  });

  it('no closure source at all', async () => {
    const r = await runCli(['copy', '--store', 'memory://'], { env: { PATH: process.env.PATH } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no closure given/);
  });

  it('two closure sources', async () => {
    const r = await runCli(['copy', '--store', 'memory://', '--attrs', 'a', '--closure-file', 'b']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /only one closure source/);
  });

  it('a bad signing key', async () => {
    const file = join(tmp, 'ok.json');
    await writeFile(file, attrs([entry()]));
    const key = join(tmp, 'bad.key');
    await writeFile(key, 'not-a-key');
    const r = await runCli(['copy', '--store', 'memory://', '--attrs', file, '--sign-key-file', key]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--sign-key-file/);
  });
});
