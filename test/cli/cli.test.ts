// The command line: help on every command, usage errors exit 2 with a
// message that says what to fix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers/daemon.js';

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('nix-castore CLI', () => {
  it('prints help', () => {
    const r = run('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Usage: nix-castore <command>/);
    assert.match(r.stdout, /daemon/);
  });
  it("'help COMMAND' is COMMAND's help; no command at all is a usage error (help on stderr, exit 2)", () => {
    const h = run('help', 'gc');
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /^Usage: nix-castore gc /);
    const none = run();
    assert.equal(none.status, 2);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /Usage: nix-castore <command>[^]*--version/);
  });
  it('health of an address nobody serves: exit 1 with the cause, without grpc-js resolver notes', () => {
    const r = run('health', 'grpc+unix:///nonexistent/nix-castore-health.sock');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /is not serving \(unreachable: connect ENOENT \/nonexistent\/nix-castore-health\.sock\)/);
    assert.doesNotMatch(r.stderr, /Resolution note|No connection established/);
  });
  it('a store path with a trailing slash (as completion leaves it) is taken', () => {
    const r = run('path-info', '--store', 'memory://', `/nix/store/${'a'.repeat(32)}-trailing/`);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /aaaa-trailing is not in the store/);
  });
  it('every command listed in the main help answers --help and -h with its usage, exit 0', () => {
    const names = [...run('--help').stdout.matchAll(/^  ([a-z-]+)  /gm)].map((m) => m[1]);
    assert.ok(names.length >= 13, `commands in the main help: ${names}`);
    for (const name of names) {
      for (const flag of ['--help', '-h']) {
        const r = run(name, flag);
        assert.equal(r.status, 0, `${name} ${flag}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^Usage: nix-castore ${name}\\b`), `${name} ${flag}`);
      }
    }
  });
  it('prints daemon help mentioning the loopback default', () => {
    const r = run('daemon', '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /\[::1\]:8000: loopback only/);
    assert.match(r.stdout, /--data DIR/);
  });
  it('rejects unknown commands and flags with exit 2', () => {
    assert.equal(run('frobnicate').status, 2);
    const r = run('daemon', '--bogus');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bogus/);
  });
  it('explains a bad listen address', () => {
    const r = run('daemon', '--listen', 'nonsense');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /expected host:port, \[v6\]:port or unix:\/abs\/path/);
  });
  it('refuses --data together with --store', () => {
    const r = run('daemon', '--data', '/tmp/x', '--store', 'memory://');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /either --data or --store/);
  });
  it('refuses a bad store address', () => {
    const r = run('daemon', '--store', 'memory:///x');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /memory:\/\/ takes no host and no path/);
  });
});

describe('nix-castore health', () => {
  it('waits for a daemon and reports SERVING; fails for an absent one', async () => {
    const { startDaemonProcess } = await import('../helpers/daemon.js');
    const d = await startDaemonProcess();
    try {
      const r = spawnSync(process.execPath, [CLI, 'health', '--wait', '5', d.addr], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /SERVING/);
    } finally {
      await d.stop();
    }
    const gone = spawnSync(process.execPath, [CLI, 'health', '--wait', '0.3', 'grpc+unix:///nonexistent/x.sock'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /not serving/);
  });
});
