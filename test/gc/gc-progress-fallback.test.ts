// AdminClient.collect against servers in this process built from the
// daemon's own AdminService handlers over a real on-disk collector: with
// CollectGarbageWithProgress it hands on the phase lines; without it (a
// daemon older than the method) it falls back to CollectGarbage and still
// returns the report; with no collector it says so, as CollectGarbage does.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AdminClient } from '../../src/grpc/admin-client.js';
import { adminServiceDef } from '../../src/grpc/definitions.js';
import { adminHandlers } from '../../src/server/admin-handlers.js';
import { diskAdmin, type GcAdmin } from '../../src/gc/admin.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import type { GcReport } from '../../src/gc/report.js';
import { putPath } from './reference-paths.js';

const A = `/nix/store/${'c'.repeat(32)}-gc-fallback-a`;
const DRY_RUN = { keepSince: '0', grace: '0', dryRun: true };

/** Serves AdminService on a unix socket, with only the methods `served` names. */
async function serve(socket: string, admin: GcAdmin | undefined, served: string[]): Promise<grpc.Server> {
  const def = Object.fromEntries(Object.entries(adminServiceDef()).filter(([m]) => served.includes(m)));
  const server = new grpc.Server();
  server.addService(def, adminHandlers(admin, () => {}));
  await new Promise<void>((res, rej) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? rej(err) : res())));
  return server;
}

describe('AdminClient.collect', () => {
  let tmp: string | undefined;
  const servers: grpc.Server[] = [];
  after(async () => {
    for (const s of servers) s.forceShutdown();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('streams the phase lines, falls back to CollectGarbage on an older daemon, and names a missing collector', async () => {
    tmp = await mkdtemp(join(tmpdir(), 'gc-progress-fallback-'));
    const data = join(tmp, 'data');
    const store = openStore(sameAddr(fileAddr(data)));
    try {
      await putPath(store, A, 'a\n', []);
    } finally {
      await store.close();
    }
    const collect = async (socket: string) => {
      const client = new AdminClient(`grpc+unix://${socket}`);
      const lines: string[] = [];
      try {
        const report = JSON.parse(await client.collect(DRY_RUN, (l) => lines.push(l))) as GcReport;
        return { report, lines };
      } finally {
        client.close();
      }
    };
    const all = Object.keys(adminServiceDef());
    const older = all.filter((m) => m !== 'CollectGarbageWithProgress');
    assert.ok(older.includes('CollectGarbage'));

    const current = join(tmp, 'current.sock');
    servers.push(await serve(current, diskAdmin(data), all));
    const streamed = await collect(current);
    assert.deepEqual(streamed.report.deleted, [A.slice(11)]);
    assert.deepEqual(streamed.lines.slice(0, 3), ['gc: reading pins and PathInfos', 'gc: marking from 0 kept paths', 'gc: deciding what goes']);

    const old = join(tmp, 'old.sock');
    servers.push(await serve(old, diskAdmin(data), older));
    const fellBack = await collect(old);
    assert.deepEqual(fellBack.report.deleted, [A.slice(11)], 'the unary call’s report');
    assert.deepEqual(fellBack.lines, [], 'an older daemon sends no lines');

    const none = join(tmp, 'none.sock');
    servers.push(await serve(none, undefined, all));
    await assert.rejects(collect(none), /CollectGarbage: UNIMPLEMENTED: this daemon's store has no garbage collector/);
  });
});
