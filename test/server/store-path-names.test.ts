// Store path names follow Nix's rule (checkName): a daemon refuses a
// PathInfo whose name's first dash-separated component is "." or "..",
// and keeps accepting other names with a leading dot.
import { test, before, after } from 'node:test';
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
  w.close();
  await daemon.stop();
});

test('PathInfo Put of <hash>-. / <hash>-.. / <hash>-.-x is refused with INVALID_ARGUMENT', async () => {
  for (const name of ['.', '..', '.-x', '..-x']) {
    const { info, storeDigest } = symlinkPathInfo(name);
    const put = await w.putPathInfo(info);
    assert.equal(put.name, 'INVALID_ARGUMENT', `${name}: ${put.details}`);
    assert.match(put.details, /first dash-separated component must not be/);
    assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND', name);
  }
});

test('other leading dots stay accepted', async () => {
  for (const name of ['.gitignore', '..x', '...']) {
    const { info, storeDigest } = symlinkPathInfo(name);
    const put = await w.putPathInfo(info);
    assert.equal(put.name, 'OK', `${name}: ${put.details}`);
    assert.equal((await w.getPathInfo(storeDigest)).name, 'OK', name);
  }
});
