// Issue 18, finding 8: a PathInfo whose store path name Nix would refuse
// (".", "..", a leading ".-" or "..-") is refused by a real daemon.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer, symlinkPathInfo } from '../helpers/grpc-writes.js';

let daemon: DaemonProcess;
let w: Writer;

before(async () => {
  daemon = await startDaemonProcess();
  w = new Writer(daemon.socket);
});

after(async () => {
  w?.close();
  await daemon?.stop();
});

it('PathInfo Put of <hash>-., <hash>-.., <hash>-.-x → INVALID_ARGUMENT, nothing stored', async () => {
  for (const label of ['.', '..', '.-x', '..-x']) {
    const { info, storeDigest } = symlinkPathInfo(label);
    const put = await w.putPathInfo(info);
    assert.equal(put.name, 'INVALID_ARGUMENT', `${label}: ${put.details}`);
    assert.match(put.details, /Nix refuses/);
    assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND');
  }
});

it('names with other leading dots are still accepted', async () => {
  for (const label of ['.gitignore', '..a']) assert.equal((await w.putPathInfo(symlinkPathInfo(label).info)).name, 'OK', label);
});
