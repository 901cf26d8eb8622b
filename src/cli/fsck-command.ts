import { resolve } from 'node:path';
import { parse, positiveIntFlag, UsageError, type Command } from './usage.js';
import { parseAddr } from '../castore/from-addr.js';
import { fsck, formatBytes, type Finding, type FsckCounts } from '../fsck/fsck.js';

const HELP = `Usage: nix-castore fsck [--data DIR | --store file:///DIR] [--nar] [--json]

Checks an on-disk store (read-only; a daemon may keep serving it):
  * every blob hashes (BLAKE3) to its name;
  * every directory decodes, is valid, canonically encoded and hashes to its
    name; its child directories exist with a size matching either
    DirectoryNode.size formula, its files' blobs exist with the stated size;
  * every PathInfo decodes, is valid and stored under its store path's
    digest, and its root exists with a complete directory closure and all
    its blobs;
  * with --nar, every PathInfo's NAR is rendered and must match the NAR
    hash and size it records.
Blobs and directories nothing refers to are harmless and only counted;
temp files left in tmp/ by dead processes are warnings.

Each problem is one line on stdout: severity, kind (blob, directory,
pathinfo, tmp, layout), the object's file under DIR, what is wrong. A
summary of what was checked follows.

Options:
      --data DIR    the store directory (default $XDG_DATA_HOME/nix-castore,
                    the daemon's default).
      --store ADDR  the same as file:///DIR.
      --nar         also render and check every NAR (reads every blob again).
      --json        print one JSON object instead: {ok, store, counts,
                    problems, warnings}.
      --jobs N      objects checked at once (default 8).
  -h, --help        show this help.

Exit status: 0 no problems (warnings allowed), 1 problems found or the store
cannot be read, 2 bad usage.`;

export const fsckCommand: Command = {
  name: 'fsck',
  summary: 'check an on-disk store for corruption and missing objects',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, {
      data: { type: 'string' },
      store: { type: 'string' },
      nar: { type: 'boolean' },
      json: { type: 'boolean' },
      jobs: { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.data !== undefined && values.store !== undefined) throw new UsageError('give either --data or --store, not both');
    const root = await storeDir(values.data, values.store);
    const concurrency = positiveIntFlag(values.jobs, '--jobs', 8);
    const json = values.json === true;
    const problems: Finding[] = [];
    const warnings: Finding[] = [];
    const counts = await fsck(root, {
      nar: values.nar === true,
      concurrency,
      onFinding(f) {
        if (json) (f.severity === 'error' ? problems : warnings).push(f);
        else console.log(`${f.severity}: ${f.kind} ${f.object}: ${f.message}`);
      },
    });
    if (json) {
      const strip = ({ kind, object, message }: Finding) => ({ kind, object, message });
      console.log(JSON.stringify({ ok: counts.errors === 0, store: root, counts, problems: problems.map(strip), warnings: warnings.map(strip) }, null, 2));
    } else {
      console.log(summary(root, counts, values.nar === true));
    }
    return counts.errors === 0 ? 0 : 1;
  },
};

async function storeDir(data: string | undefined, store: string | undefined): Promise<string> {
  if (data !== undefined) return resolve(data);
  if (store !== undefined) {
    let a;
    try {
      a = parseAddr(store);
    } catch (err) {
      throw new UsageError(`--store: ${(err as Error).message}`);
    }
    if (a.kind !== 'file') throw new UsageError(`fsck checks an on-disk store: give --store file:///DIR (or --data DIR), not ${store}`);
    return a.root;
  }
  return (await import('./daemon-command.js')).defaultDataDir();
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function summary(root: string, c: FsckCounts, nar: boolean): string {
  return [
    `nix-castore fsck ${root}: ${c.errors === 0 ? 'ok' : plural(c.errors, 'problem')}, ${plural(c.warnings, 'warning')}`,
    `  blobs        ${c.blobs} checked (${formatBytes(c.blobBytes)}), ${c.orphanedBlobs} unreferenced`,
    `  directories  ${c.directories} checked, ${c.orphanedDirectories} unreferenced`,
    `  PathInfos    ${c.pathInfos} checked` + (nar ? `, ${plural(c.nars, 'NAR')} rendered (${formatBytes(c.narBytes)})` : ''),
    `  temp files   ${c.tempFilesInProgress} in progress, ${c.tempFilesLeftOver} left over`,
  ].join('\n');
}
