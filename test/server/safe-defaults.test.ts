// Safe defaults of `nix-castore daemon`: it listens on loopback only unless
// told otherwise (so does the binary cache given a bare port), and creates
// unix sockets with mode 0660 (--socket-mode to change it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { DEFAULT_LISTEN, parseListenAddr } from '../../src/server/listen.js';
import { parseHttpAddr } from '../../src/server/http-cache.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { runCli } from '../copy/run-cli.js';

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(h) === 6) return h === '::1';
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === 'localhost';
}

describe('listening on loopback only by default', () => {
  it(`the default listen address ${DEFAULT_LISTEN} is loopback`, () => {
    const a = parseListenAddr(DEFAULT_LISTEN);
    assert.equal(a.kind, 'tcp');
    assert.ok(a.kind === 'tcp' && isLoopback(a.host), `${DEFAULT_LISTEN} is a loopback address`);
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('[::]') && !isLoopback('192.168.1.1'), 'the check itself');
  });

  it('a bare --http port binds 127.0.0.1', () => {
    for (const s of ['8080', ':8080', '0']) assert.equal(parseHttpAddr(s).host, '127.0.0.1', s);
  });

  it('--help says so', async () => {
    const r = await runCli(['daemon', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Default \[::1\]:8000: loopback only/);
    for (const flag of ['--socket-mode', '--read-only', '--auth-token-file']) assert.ok(r.stdout.includes(flag), flag);
  });
});

describe('unix socket permissions', () => {
  for (const [args, mode] of [[[], 0o660], [['--socket-mode', '600'], 0o600], [['--socket-mode', '0666'], 0o666]] as const) {
    it(`${args.length ? args.join(' ') : 'by default'} → ${mode.toString(8)}`, async () => {
      const d = await startDaemonProcess({ args: ['--store', 'memory://', ...args] });
      try {
        const s = await stat(d.socket);
        assert.ok(s.isSocket());
        assert.equal((s.mode & 0o777).toString(8), mode.toString(8));
      } finally {
        await d.stop();
      }
    });
  }

  it('a mode that is not octal is a usage error', async () => {
    const r = await runCli(['daemon', '--store', 'memory://', '--listen', 'unix:/nonexistent/x.sock', '--socket-mode', '9']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--socket-mode/);
  });
});
