// commandOutput runs real processes: sh, node, a command that is not there.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError, commandOutput } from '../../src/util/command-output.js';

const node = process.execPath;

describe('commandOutput', () => {
  it('returns the whole standard output of a command that prints it in many pieces', async () => {
    // 3 MiB in 3 writes of 1 MiB: the pipe delivers it in 64 KiB reads.
    const out = await commandOutput(node, ['-e', "for (let i = 0; i < 3; i++) process.stdout.write('ab'.repeat(512 * 1024))"]);
    assert.equal(out.length, 3 * 1024 * 1024);
    assert.equal(out, 'ab'.repeat(3 * 512 * 1024));
  });

  it('decodes UTF-8 split across reads', async () => {
    const out = await commandOutput(node, ['-e', "process.stdout.write(Buffer.from('é'.repeat(100000)))"]);
    assert.equal(out, 'é'.repeat(100000));
  });

  it('passes the environment it is given', async () => {
    assert.equal(await commandOutput('sh', ['-c', 'printf %s "$PROBE"'], { env: { PATH: process.env.PATH, PROBE: 'from the caller' } }), 'from the caller');
  });

  it('fails with what the command printed on stderr when it exits non-zero', async () => {
    await assert.rejects(commandOutput('sh', ['-c', 'echo partial; echo "path is not valid" >&2; exit 1']), (err: unknown) => {
      assert.ok(err instanceof CommandError);
      assert.equal(err.reason, 'failed');
      assert.equal(err.message, 'path is not valid');
      assert.equal(err.stderr, 'path is not valid');
      return true;
    });
  });

  it('says the exit code, or the signal, when the command printed nothing on stderr', async () => {
    await assert.rejects(commandOutput('sh', ['-c', 'exit 3']), { name: 'CommandError', reason: 'failed', message: 'sh exited with code 3' });
    await assert.rejects(commandOutput('sh', ['-c', 'kill -9 $$']), { name: 'CommandError', reason: 'failed', message: 'sh was killed by SIGKILL' });
  });

  it('tells a command that is not on PATH apart', async () => {
    await assert.rejects(commandOutput('nix-castore-no-such-command', []), { name: 'CommandError', reason: 'ENOENT' });
  });

  it('stops a command whose output passes the bound, and fails', async () => {
    // `yes` never ends by itself: the promise settles only because the bound kills it.
    await assert.rejects(commandOutput('yes', [], { maxStdout: 1 << 20 }), { name: 'CommandError', reason: 'too-large', message: `yes printed more than ${1 << 20} bytes` });
  });
});
