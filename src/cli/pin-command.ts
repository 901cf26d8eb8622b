import { parse, UsageError, type Command } from '../util/usage.js';
import { checkPinName } from '../store/backends/disk-retention.js';
import { absolute } from '../nix/store-path.js';
import { diskAdmin } from '../gc/admin.js';
import { isKind } from '../castore/errors.js';
import { parseStorePathArg } from './path-info-command.js';
import { maintenanceTarget } from './store-root.js';

const HELP = `Usage: nix-castore pin add NAME STOREPATH... [--data DIR | --store file:///DIR | --store grpc+…]
       nix-castore pin list [--json] [same --data / --store]
       nix-castore pin rm NAME [same --data / --store]

Pins are named roots: 'nix-castore gc' keeps pinned paths, and their
closures, whatever their age. 'pin add' replaces NAME's previous set of
paths (so a CI job can pin its latest release under one name); every path
must be in the store. 'pin rm' removes the pin, not the paths: the next gc
decides about them.

NAME: 1 to 100 letters, digits, '.', '_' or '-'. STOREPATH:
/nix/store/<hash>-<name>, its basename, or a symlink to one (./result).

Options:
      --data DIR    the store directory (default: the daemon's default).
      --store ADDR  file:///DIR (the same as --data DIR), or a daemon
                    (grpc+unix:///…, grpc+http://…) serving an on-disk store,
                    through nixcastore.v1.AdminService (send the write token
                    with NIX_CASTORE_AUTH_TOKEN_FILE).
      --json        pin list: one JSON object {NAME: [paths]}.
  -h, --help        show this help.

Exit status: 0 done, 1 a path is not in the store or NAME is no pin, 2 bad usage.`;

export const pinCommand: Command = {
  name: 'pin',
  summary: 'name store paths that gc must keep (add, list, rm)',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(argv, { data: { type: 'string' }, store: { type: 'string' }, json: { type: 'boolean' } }, true);
    const [sub, ...args] = positionals;
    if (sub !== 'add' && sub !== 'list' && sub !== 'rm') throw new UsageError(`pin takes add, list or rm${sub ? `, not ${JSON.stringify(sub)}` : ''}\n\n${HELP}`);
    const name = args[0];
    if (sub === 'list') {
      if (args.length > 0) throw new UsageError('pin list takes no arguments');
    } else {
      if (name === undefined) throw new UsageError(`pin ${sub} needs a NAME`);
      try {
        checkPinName(name);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (sub === 'rm' && args.length > 1) throw new UsageError('pin rm takes one NAME');
      if (sub === 'add' && args.length < 2) throw new UsageError(`pin add ${name} needs at least one store path (to remove the pin: pin rm ${name})`);
    }
    const paths = sub === 'add' ? args.slice(1).map((a) => absolute(parseStorePathArg(a))) : [];
    const target = await maintenanceTarget('pin', values.data, values.store);
    let remote: import('../grpc/admin-client.js').AdminClient | undefined;
    if (target.kind === 'daemon') remote = new (await import('../grpc/admin-client.js')).AdminClient(target.addr);
    const s3 = target.kind === 's3' ? (await import('../gc/scaleout-admin.js')).scaleoutAdmin(target.addr) : undefined;
    const local = target.kind === 'file' ? diskAdmin(target.root) : s3;
    try {
      if (sub === 'list') {
        const all = await (remote ?? local!).listPins();
        if (values.json) console.log(JSON.stringify(Object.fromEntries(all.map((p) => [p.name, p.paths])), null, 2));
        else for (const p of all) console.log(`${p.name}\t${p.paths.join(' ')}`);
        return 0;
      }
      if (sub === 'rm') {
        const removed = remote ? await remote.removePin(name).then(() => true, (err) => (isKind(err, 'not-found') ? false : Promise.reject(err))) : await local!.removePin(name);
        if (removed) return 0;
        console.error(`nix-castore: there is no pin ${JSON.stringify(name)} (see 'nix-castore pin list')`);
        return 1;
      }
      try {
        await (remote ?? local!).setPin(name, paths);
      } catch (err) {
        if (!isKind(err, 'precondition')) throw err;
        console.error(`nix-castore: ${(err as Error).message}`);
        return 1;
      }
      return 0;
    } finally {
      remote?.close();
      await s3?.close();
    }
  },
};
