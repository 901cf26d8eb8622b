// The spool's drain lock and pids used again. A drainer killed with SIGKILL
// leaves .drain.lock naming its pid; in a container the restarted drainer
// gets the same pid (1, say), elsewhere an unrelated process may. Such a
// lock must not stop every later drain ("another drainer is working"),
// while a lock whose holder really runs still does.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';

let tmp: string;
let d: DaemonProcess;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-drain-lock-'));
  d = await startDaemonProcess();
});
after(async () => {
  await d.stop();
  await rm(tmp, { recursive: true, force: true });
});

/** A spool holding one queued store path (new to the daemon). */
async function spoolWithEntry(name: string): Promise<string> {
  const spool = join(tmp, name);
  const file = join(tmp, `${name}.txt`);
  await writeFile(file, `${name} ${Date.now()} ${Math.random()}\n`);
  const path = (await runNix('nix-store', ['--add', file])).stdout.toString().trim();
  const q = await runCli(['hook', '--mode', 'queue', '--spool', spool], { env: { ...nixEnv(), OUT_PATHS: path, DRV_PATH: '' } });
  assert.equal(q.code, 0, q.stderr);
  return spool;
}

const queued = async (spool: string) => (await readdir(spool)).filter((n) => n.endsWith('.json')).length;

/** /proc/PID/stat field 22: when the process started. */
async function startTime(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

describe('drain lock', () => {
  it('a lock naming the drainer\'s own pid (left by an earlier process with that pid) is taken over', async () => {
    const spool = await spoolWithEntry('own-pid');
    // The shell writes the lock as a killed drainer with this pid left it, then becomes the drainer.
    const child = spawn('/bin/sh', ['-c', `echo $$ > "$1/.drain.lock" && exec "$2" "$3" drain --spool "$1" --store "$4"`, 'sh', spool, process.execPath, CLI, d.addr], {
      env: nixEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (b) => (log += b));
    const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    assert.equal(code, 0, log);
    assert.equal(await queued(spool), 0, log);
  });

  it('a lock naming a live process that started after the lock\'s holder is taken over', async () => {
    const spool = await spoolWithEntry('reused-pid');
    const other = spawn('/bin/sleep', ['600'], { stdio: 'ignore' });
    try {
      const started = Number(await startTime(other.pid!));
      await writeFile(join(spool, '.drain.lock'), `${other.pid} ${started - 1}\n`);
      const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await queued(spool), 0);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a lock whose holder runs keeps other drainers out', async () => {
    const spool = await spoolWithEntry('held');
    const holder = spawn('/bin/sleep', ['600'], { stdio: 'ignore' });
    try {
      await writeFile(join(spool, '.drain.lock'), `${holder.pid} ${await startTime(holder.pid!)}\n`);
      const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /another drainer is working/);
      assert.equal(await queued(spool), 1);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
