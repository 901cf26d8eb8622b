// The copy's questions to the local Nix, asked of real Nix.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { requireNix, fixtureClosure } from '../helpers/nix.js';
import { derivationOutputs, nixPathInfoJson } from '../../src/upload/nix-cli.js';
import { UsageError } from '../../src/util/usage.js';

describe('nix-cli', () => {
  let path: string;
  before(async () => {
    await requireNix();
    path = (await fixtureClosure()).root;
  });

  it('nixPathInfoJson gives Nix\'s JSON for the path and its closure', async () => {
    const text = await nixPathInfoJson([path]);
    assert.ok(text.includes(path), text.slice(0, 200));
    assert.doesNotThrow(() => JSON.parse(text));
  });

  it('a path Nix does not have: a usage error with what Nix said', async () => {
    const missing = '/nix/store/00000000000000000000000000000000-not-there';
    await assert.rejects(nixPathInfoJson([missing]), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, /^nix --extra-experimental-features nix-command path-info --json failed: /);
      assert.match(err.message, /not-there/);
      return true;
    });
  });

  it('Nix not on PATH: a usage error that says so', async () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await assert.rejects(derivationOutputs('/nix/store/00000000000000000000000000000000-x.drv'), { name: 'UsageError', message: 'nix-store is not on PATH; it is needed to look up store paths' });
    } finally {
      process.env.PATH = saved;
    }
  });
});
