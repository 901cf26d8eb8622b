// Work stops when its client goes away. A valid Directory DAG of 40 levels
// whose two entries per level point at the same child is 41 directories to
// store but renders a NAR of ~2^40 entries: CalculateNAR of it, or its NAR
// over HTTP, pins a core until the client's going away (or the NAR size
// the PathInfo states) stops it. Measured as the daemon's CPU time after
// the client has gone: it must stop growing. The bound is far below the
// ~1 core a renderer still running would take, even on a busy machine.
// A recursive Get under a directory of 30k subdirectories used to load
// them all before its next send noticed the client was gone.
// (The HTTP cases held before this test existed — the response loop
// already stopped on a closed socket and at NarSize — and guard the
// renderer's own signal and cap now; CalculateNAR ran on for ever.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { directoryServiceDef, pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { GrpcPathInfoService } from '../../src/grpc/backends/grpc-pathinfo-service.js';
import { Writer } from '../helpers/grpc-writes.js';
import { cpuDuring } from '../helpers/proc-usage.js';
import { cacheUrlOf } from '../http/http-helpers.js';

const LEVELS = 40;
/** CPU ticks (10 ms) the daemon may spend in the 2 s after the client has gone and 300 ms have passed. */
const IDLE_TICKS = 30;

/** The DAG, children first; the last is the root. */
function dagBomb(): Directory[] {
  const dirs: Directory[] = [{ directories: [], files: [], symlinks: [] }];
  for (let i = 0; i < LEVELS; i++) {
    const child = dirs[dirs.length - 1];
    const digest = directoryDigest(child);
    const size = directorySize(child);
    dirs.push({ directories: ['a', 'b'].map((n) => ({ name: Buffer.from(n), digest, size })), files: [], symlinks: [] });
  }
  return dirs;
}

let daemon: DaemonProcess;
let w: Writer;
let root: Node;
const settle = () => new Promise((r) => setTimeout(r, 300));

before(async () => {
  daemon = await startDaemonProcess({ extraArgs: ['--http', '127.0.0.1:0'] });
  w = new Writer(daemon.socket);
  const dirs = dagBomb();
  const put = await w.putDirectories(dirs);
  assert.equal(put.name, 'OK', put.details);
  const top = dirs[dirs.length - 1];
  root = { type: 'directory', name: Buffer.from(''), digest: directoryDigest(top), size: directorySize(top) };
});
after(async () => {
  w.close();
  await daemon.stop();
});

describe('CalculateNAR of a DAG bomb', () => {
  const calc = (opts: grpc.CallOptions) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const def = pathInfoServiceDef().CalculateNAR;
      const call = w.client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, { node: root }, new grpc.Metadata(), opts, (err) => resolve(err));
      if (!opts.deadline) setTimeout(() => call.cancel(), 300);
    });

  it('stops when the client cancels', async () => {
    const err = await calc({});
    assert.equal(err?.code, grpc.status.CANCELLED);
    await settle();
    const ticks = await cpuDuring(daemon.child.pid!, 2000);
    assert.ok(ticks < IDLE_TICKS, `the daemon spent ${ticks * 10} ms of CPU in the 2 s after the client cancelled`);
  });

  it("stops when our own client's signal is aborted (GrpcPathInfoService, over the lean HTTP/2 client)", async () => {
    const client = new GrpcPathInfoService(daemon.addr);
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error('the caller gave up')), 300);
      await assert.rejects(client.calculateNar(root, ac.signal), { message: 'the caller gave up' });
      await settle();
      const ticks = await cpuDuring(daemon.child.pid!, 2000);
      assert.ok(ticks < IDLE_TICKS, `the daemon spent ${ticks * 10} ms of CPU in the 2 s after the client aborted`);
      await assert.rejects(client.calculateNar(root, ac.signal), { message: 'the caller gave up' }, 'an aborted signal sends no call');
    } finally {
      await client.close();
    }
  });

  it("stops at the client's deadline", async () => {
    const err = await calc({ deadline: Date.now() + 300 });
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
    await settle();
    const ticks = await cpuDuring(daemon.child.pid!, 2000);
    assert.ok(ticks < IDLE_TICKS, `the daemon spent ${ticks * 10} ms of CPU in the 2 s after the deadline`);
  });
});

describe('the NAR of a DAG bomb over HTTP', () => {
  let url: string;
  /** A PathInfo for the bomb stating `narSize`; its NAR URL. */
  async function publish(label: string, narSize: number): Promise<string> {
    const storeDigest = Buffer.alloc(20, label.length);
    const narSha256 = Buffer.alloc(32, label.length);
    const name = `${nix32(storeDigest)}-${label}`;
    const put = await w.putPathInfo({ node: { ...root, name: Buffer.from(name) }, references: [], narinfo: { narSize, narSha256, signatures: [], referenceNames: [] } });
    assert.equal(put.name, 'OK', put.details);
    return `${url}/nar/${nix32(storeDigest)}-${nix32(narSha256)}.nar`;
  }
  before(async () => (url = await cacheUrlOf(daemon)));

  it('stops when the client goes away', async () => {
    const nar = await publish('bomb-claims-a-petabyte', 2 ** 50);
    await new Promise<void>((resolve, reject) => {
      const req = http.get(nar, (res) => {
        assert.equal(res.statusCode, 200);
        let got = 0;
        res.on('data', (d: Buffer) => {
          got += d.length;
          if (got > 1 << 20) req.destroy();
        });
        res.on('close', resolve);
      });
      req.on('error', () => resolve());
      setTimeout(() => reject(new Error('no NAR bytes within 60 s')), 60_000).unref();
    });
    await settle();
    const ticks = await cpuDuring(daemon.child.pid!, 2000);
    assert.ok(ticks < IDLE_TICKS, `the daemon spent ${ticks * 10} ms of CPU in the 2 s after the client went away`);
  });

  it('ends with an error once it renders more than the NarSize stated', async () => {
    const nar = await publish('bomb-claims-64-KiB', 64 << 10);
    const got = await new Promise<{ status?: number; bytes: number; complete: boolean }>((resolve) => {
      http.get(nar, (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => (bytes += d.length));
        res.on('end', () => resolve({ status: res.statusCode, bytes, complete: res.complete }));
        res.on('error', () => resolve({ status: res.statusCode, bytes, complete: false }));
      }).on('error', () => resolve({ bytes: 0, complete: false }));
    });
    // At most the stated NarSize is sent (a cut exactly there looks complete; Nix then rejects it by hash).
    assert.ok(got.bytes <= 64 << 10, `${got.bytes} bytes sent`);
    // Its log line (written once the handler has ended; the test before left one saying 'aborted' too).
    const cut = /aborted: .*longer than (the 65536 bytes its PathInfo states|its NarSize 65536)/;
    for (let i = 0; i < 200 && !cut.test(daemon.stderr()); i++) await new Promise((r) => setTimeout(r, 25));
    assert.match(daemon.stderr(), cut);
    await settle();
    const ticks = await cpuDuring(daemon.child.pid!, 2000);
    assert.ok(ticks < IDLE_TICKS, `the daemon spent ${ticks * 10} ms of CPU in the 2 s after the response ended`);
  });
});

describe('recursive Directory Get', () => {
  const CHILDREN = 30_000;
  let wide: Directory;
  before(async () => {
    // Distinct children (one symlink each), so the walk loads every one.
    const children: Directory[] = Array.from({ length: CHILDREN }, (_, i) => ({ directories: [], files: [], symlinks: [{ name: Buffer.from('l'), target: Buffer.from(`t${i}`) }] }));
    const entries = children.map((c, i) => ({ name: Buffer.from(`d${String(i).padStart(5, '0')}`), digest: directoryDigest(c), size: directorySize(c) }));
    wide = { directories: entries, files: [], symlinks: [] };
    const put = await w.putDirectories([...children, wide]);
    assert.equal(put.name, 'OK', put.details);
  });

  it('stops when the client cancels after the first directory', async () => {
    const def = directoryServiceDef().Get;
    const got = await new Promise<number>((resolve) => {
      let n = 0;
      const call = w.client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, { digest: directoryDigest(wide), recursive: true });
      call.on('data', () => {
        if (++n === 1) call.cancel();
      });
      call.on('error', () => resolve(n));
      call.on('end', () => resolve(n));
    });
    assert.ok(got < CHILDREN + 1, `all ${got} directories were sent`);
    await settle();
    const ticks = await cpuDuring(daemon.child.pid!, 2000);
    assert.ok(ticks < IDLE_TICKS, `the daemon spent ${ticks * 10} ms of CPU in the 2 s after the client cancelled`);
  });
});
