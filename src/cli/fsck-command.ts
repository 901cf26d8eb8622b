import { resolve } from 'node:path';
import { parse, positiveIntFlag, UsageError, type Command } from '../util/usage.js';
import { parseAddr } from '../addr/parse.js';
import { StoreChecker, formatBytes, type Finding, type FsckCounts } from '../fsck/fsck.js';
import type { ScaleoutFsckCounts } from '../fsck/scaleout-fsck.js';

/** How often fsck says how far it got (NIX_CASTORE_PROGRESS_MS: tests). */
const PROGRESS_MS = Number(process.env.NIX_CASTORE_PROGRESS_MS) || 5000;

const HELP = `Usage: nix-castore fsck [--data DIR | --store file:///DIR] [--nar] [--jobs N] [--json]
       nix-castore fsck --store s3://BUCKET/PREFIX?index=postgres://… [--verify-blobs] [--nar] [--jobs N] [--json]

Checks an on-disk store (read-only; a daemon may keep serving it):
  * every blob hashes (BLAKE3) to its name; every packed blob or directory
    is the record its pack index names and hashes to it;
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

With --store s3://… it checks a scale-out store instead (read-only, in a
read-only database session; daemons may keep writing to it), the same
address the daemon takes:
  * every S3 object the blob index refers to exists and is big enough for
    every blob the index places in it (one listing of the bucket prefix);
  * with --verify-blobs, every indexed blob's bytes are read (each object
    once, front to back) and must hash to its digest;
  * directories and PathInfos in PostgreSQL as above, a file's blob being
    indexed with the stated size in a sound object;
  * S3 objects no index entry refers to are warnings ("orphaned bytes"):
    a daemon killed between writing an object and indexing it, or the
    loser of a race, leaves them; they are harmless. So are unfinished
    multipart uploads (a daemon killed while writing a large blob), also
    warnings. Unreferenced blobs and directories are only counted.
BLOB_SERVICE_ADDR and the like are not read: fsck checks the one address.

Each problem is one line on stdout: severity, kind (blob, directory,
pathinfo, pack, tmp, layout; object for an S3 object), the object (its file
under DIR, or PACK@OFFSET for a packed record; for s3://, its key below the prefix, or directories/HEX, pathinfos/HEX
for database rows), what is wrong. A summary of what was checked follows.

Options:
      --data DIR      the store directory (default $XDG_DATA_HOME/nix-castore,
                      the daemon's default).
      --store ADDR    file:///DIR (the same as --data DIR) or
                      s3://BUCKET/PREFIX?index=postgres://…&endpoint=…&region=…
                      (S3 credentials from the AWS SDK's default chain).
      --verify-blobs  s3:// stores: also read and hash every blob (reads every
                      object once). On-disk stores always hash every blob.
      --nar           also render and check every NAR (reads every blob again).
      --json          print one JSON object instead: {ok, store, counts,
                      problems, warnings} (for s3:// also endpoint and index,
                      the database, its password replaced by ***).
      --jobs N        objects checked at once (default 8; for s3://, objects
                      read at once with --verify-blobs).
  -h, --help          show this help.

Exit status: 0 no problems (warnings allowed), 1 problems found or the store
cannot be read, 2 bad usage.`;

type Target = { kind: 'file'; root: string } | { kind: 's3'; addr: string };

export const fsckCommand: Command = {
  name: 'fsck',
  summary: 'check a store (on-disk or scale-out) for corruption and missing objects',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, {
      data: { type: 'string' },
      store: { type: 'string' },
      nar: { type: 'boolean' },
      'verify-blobs': { type: 'boolean' },
      json: { type: 'boolean' },
      jobs: { type: 'string' },
    });
    if (values.data !== undefined && values.store !== undefined) throw new UsageError('give either --data or --store, not both');
    const target = await storeTarget(values.data, values.store);
    const concurrency = positiveIntFlag(values.jobs, '--jobs', 8);
    const json = values.json === true;
    const nar = values.nar === true;
    const problems: Finding[] = [];
    const warnings: Finding[] = [];
    const onFinding = (f: Finding): void => {
      if (json) (f.severity === 'error' ? problems : warnings).push(f);
      else console.log(`${f.severity}: ${f.kind} ${f.object}: ${f.message}`);
    };
    const strip = ({ kind, object, message }: Finding) => ({ kind, object, message });
    if (target.kind === 's3') {
      const { ScaleoutChecker } = await import('../fsck/scaleout-fsck.js');
      const checker = new ScaleoutChecker(target.addr, { nar, verifyBlobs: values['verify-blobs'] === true, concurrency, onFinding });
      const counts = await checker.run();
      if (json) {
        console.log(
          JSON.stringify(
            {
              ok: counts.errors === 0,
              store: `s3://${checker.loc.bucket}/${checker.loc.prefix}`,
              endpoint: checker.loc.endpoint,
              index: checker.index,
              counts,
              problems: problems.map(strip),
              warnings: warnings.map(strip),
            },
            null,
            2,
          ),
        );
      } else {
        console.log(scaleoutSummary(`${checker.store} (index ${checker.index})`, counts, nar, values['verify-blobs'] === true));
      }
      return counts.errors === 0 ? 0 : 1;
    }
    const root = target.root;
    const checker = new StoreChecker(root, { nar, concurrency, onFinding });
    // A large store takes minutes: say how far it got every few seconds (on stderr; not with --json).
    const progress = json ? undefined : setInterval(() => {
      const c = checker.counts;
      console.error(`fsck: ${c.blobs} blobs (${(c.blobBytes / 2 ** 20).toFixed(0)} MiB), ${c.directories} directories, ${c.pathInfos} PathInfos${nar ? `, ${c.nars} NARs` : ''} checked so far`);
    }, PROGRESS_MS);
    let counts: FsckCounts;
    try {
      counts = await checker.run();
    } finally {
      clearInterval(progress);
    }
    if (json) {
      console.log(JSON.stringify({ ok: counts.errors === 0, store: root, counts, problems: problems.map(strip), warnings: warnings.map(strip) }, null, 2));
    } else {
      console.log(summary(root, counts, nar));
    }
    return counts.errors === 0 ? 0 : 1;
  },
};

async function storeTarget(data: string | undefined, store: string | undefined): Promise<Target> {
  if (data !== undefined) return { kind: 'file', root: resolve(data) };
  if (store !== undefined) {
    let a;
    try {
      a = parseAddr(store);
    } catch (err) {
      throw new UsageError(`--store: ${(err as Error).message}`);
    }
    if (a.kind === 'file') return { kind: 'file', root: a.root };
    if (a.kind === 's3') return { kind: 's3', addr: a.addr };
    throw new UsageError(
      `fsck checks an on-disk store (--store file:///DIR or --data DIR) or a scale-out one (--store s3://BUCKET/PREFIX?index=postgres://…), not ${store}`,
    );
  }
  return { kind: 'file', root: (await import('./daemon-command.js')).defaultDataDir() };
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

function scaleoutSummary(name: string, c: ScaleoutFsckCounts, nar: boolean, verify: boolean): string {
  return [
    `nix-castore fsck ${name}: ${c.errors === 0 ? 'ok' : plural(c.errors, 'problem')}, ${plural(c.warnings, 'warning')}`,
    `  S3 objects   ${c.objects} listed (${formatBytes(c.objectBytes)}), ${c.orphanedObjects} orphaned (${formatBytes(c.orphanedObjectBytes)}), ` +
      `${formatBytes(c.deadBytes)} unindexed inside packs, ${plural(c.unfinishedUploads, 'unfinished multipart upload')}` +
      (c.unfinishedUploads ? ` (${formatBytes(c.unfinishedUploadBytes)})` : ''),
    ...(c.retiredPacks
      ? [`  retired      ${plural(c.retiredPacks, 'pack')} (${formatBytes(c.retiredPackBytes)}) a pack rewrite replaced, kept until retired for --grace (a later gc deletes them)`]
      : []),
    `  blobs        ${c.blobs} indexed (${formatBytes(c.blobBytes)}), ` +
      (verify ? `${c.verifiedBlobs} hashed (${formatBytes(c.verifiedBytes)} read)` : 'not hashed (--verify-blobs)') +
      `, ${c.orphanedBlobs} unreferenced`,
    `  directories  ${c.directories} checked, ${c.orphanedDirectories} unreferenced`,
    `  PathInfos    ${c.pathInfos} checked` + (nar ? `, ${plural(c.nars, 'NAR')} rendered (${formatBytes(c.narBytes)})` : ''),
  ].join('\n');
}
