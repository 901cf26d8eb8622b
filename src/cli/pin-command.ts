import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, UsageError, type Command } from '../util/usage.js';
import { DiskPins, checkPinName } from '../store/backends/disk-retention.js';
import { diskLayout } from '../addr/open.js';
import { absolute } from '../nix/store-path.js';
import { parseStorePathArg } from './path-info-command.js';
import { diskStoreRoot } from './store-root.js';

const HELP = `Usage: nix-castore pin add NAME STOREPATH... [--data DIR | --store file:///DIR]
       nix-castore pin list [--json]
       nix-castore pin rm NAME

Pins are named roots: 'nix-castore gc' keeps pinned paths, and their
closures, whatever their age. 'pin add' replaces NAME's previous set of
paths (so a CI job can pin its latest release under one name); every path
must be in the store. 'pin rm' removes the pin, not the paths: the next gc
decides about them.

NAME: 1 to 100 letters, digits, '.', '_' or '-'. STOREPATH:
/nix/store/<hash>-<name>, its basename, or a symlink to one (./result).

Options:
      --data DIR    the store directory (default: the daemon's default).
      --store ADDR  file:///DIR (the same as --data DIR).
      --json        pin list: one JSON object {NAME: [paths]}.
  -h, --help        show this help.

Exit status: 0 done, 1 a path is not in the store or NAME is no pin, 2 bad usage.`;

export const pinCommand: Command = {
  name: 'pin',
  summary: 'name store paths that gc must keep (add, list, rm)',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(argv, { data: { type: 'string' }, store: { type: 'string' }, json: { type: 'boolean' } }, true);
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const [sub, ...args] = positionals;
    if (sub !== 'add' && sub !== 'list' && sub !== 'rm') throw new UsageError(`pin takes add, list or rm${sub ? `, not ${JSON.stringify(sub)}` : ''}\n\n${HELP}`);
    const root = await diskStoreRoot('pin', values.data, values.store);
    const layout = diskLayout(root);
    const pins = new DiskPins(layout);
    const present = (digest: Uint8Array) => existsSync(layout.objectPath('pathinfo', digest));
    if (sub === 'list') {
      if (args.length > 0) throw new UsageError('pin list takes no arguments');
      const all = await pins.list();
      if (values.json) console.log(JSON.stringify(Object.fromEntries(all.map((p) => [p.name, p.paths])), null, 2));
      else for (const p of all) console.log(`${p.name}\t${p.paths.join(' ')}`);
      return 0;
    }
    const name = args[0];
    if (name === undefined) throw new UsageError(`pin ${sub} needs a NAME`);
    try {
      checkPinName(name);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (sub === 'rm') {
      if (args.length > 1) throw new UsageError('pin rm takes one NAME');
      if (await pins.remove(name)) return 0;
      console.error(`nix-castore: there is no pin ${JSON.stringify(name)} (see 'nix-castore pin list')`);
      return 1;
    }
    const paths = args.slice(1).map(parseStorePathArg);
    if (paths.length === 0) throw new UsageError(`pin add ${name} needs at least one store path (to remove the pin: pin rm ${name})`);
    const missing = paths.filter((p) => !present(p.digest));
    if (missing.length > 0) {
      for (const p of missing) console.error(`nix-castore: ${absolute(p)} is not in the store ${root}`);
      console.error(`nix-castore: pin ${name} not changed: copy the paths first`);
      return 1;
    }
    const file = join(root, 'pins', name);
    const previous = existsSync(file) ? readFileSync(file) : undefined;
    await pins.set(name, paths.map(absolute));
    // A collector deciding meanwhile read the pins before this one: if it
    // took a path, say so and put the pin back as it was.
    const lost = paths.filter((p) => !present(p.digest));
    if (lost.length > 0) {
      if (previous) await pins.set(name, (JSON.parse(previous.toString('utf8')) as { paths: string[] }).paths);
      else await pins.remove(name);
      for (const p of lost) console.error(`nix-castore: ${absolute(p)} was collected while it was being pinned`);
      console.error(`nix-castore: pin ${name} not changed: copy the paths again, then pin them`);
      return 1;
    }
    return 0;
  },
};
