import { parse, UsageError, type Command } from '../util/usage.js';
import { diskAdmin, policyOf, type GcRequest } from '../gc/admin.js';
import { formatReport, type GcReport } from '../gc/report.js';
import { maintenanceTarget } from './store-root.js';

const HELP = `Usage: nix-castore gc [--data DIR | --store file:///DIR | --store grpc+… | --store s3://…] [--keep-since D] [--max-size S] [--grace D] [--memory S] [--dry-run] [--json]

Deletes what the retention policy does not keep, and returns the space.
Kept: every pinned path ('nix-castore pin'), every path pushed or read
within --keep-since, every path pushed within --grace, and then, with
--max-size, the most recently used other paths while the kept NARs fit —
each with its whole reference closure, so everything the store still
serves substitutes completely. Then every directory and blob a kept path
needs is marked, and the rest deleted: PathInfos first, then blob files,
then packs that are mostly garbage (their live records are copied to a new
pack first). Daemons and copies may keep using the store meanwhile: an
upload racing the collector either completes with all its content or gets
FAILED_PRECONDITION, and 'copy' and the hook's drain then upload again.

Options:
      --data DIR        the store directory (default: the daemon's default).
      --store ADDR      file:///DIR (the same as --data DIR), or a daemon
                        (grpc+unix:///…, grpc+http://…) serving an on-disk
                        store: it collects, through nixcastore.v1.AdminService
                        (a write: send the token with
                        NIX_CASTORE_AUTH_TOKEN_FILE; a --read-only daemon
                        refuses); or s3://bucket/prefix?index=postgres://…
                        (a scale-out store, collected from here; packs
                        replaced by a rewrite are deleted once retired
                        for --grace, by this or a later collection).
      --keep-since D    keep paths pushed or read within D: 30d, 12h, 90m,
                        45s, 2w; 0 keeps only pins (and --grace).
      --max-size S      keep the most recently used paths while their NAR
                        sizes add up to at most S: 500G, 200MiB, 1.5TiB.
      --grace D         always keep what was written within D (default 1h):
                        uploads in progress are not collected.
      --memory S        memory for the marks and the lists of what to
                        delete (default 64MiB); beyond it they spill to
                        scratch files (under the store's gc/; for s3://
                        stores under TMPDIR). With a daemon's address,
                        the daemon's collector gets it (at most half of
                        its machine's memory).
      --dry-run         say what would be deleted; change nothing.
      --json            print the report as one JSON object.
  -h, --help            show this help.

One collection at a time per store: a second one fails, saying which
process holds the lock. If the PathInfos or pins cannot all be read,
nothing is deleted.

Exit status: 0 done, 1 failed (nothing, or only garbage, deleted), 2 bad usage.`;

export const gcCommand: Command = {
  name: 'gc',
  summary: 'delete what the retention policy does not keep (pins, --keep-since, --max-size)',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(
      argv,
      {
        data: { type: 'string' },
        store: { type: 'string' },
        'keep-since': { type: 'string' },
        'max-size': { type: 'string' },
        grace: { type: 'string' },
        memory: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
      },
      true,
    );
    if (positionals.length > 0) throw new UsageError(`gc takes no arguments (got ${JSON.stringify(positionals[0])}); pin paths to keep them`);
    const req: GcRequest = { keepSince: values['keep-since'], maxSize: values['max-size'], grace: values.grace, memory: values.memory, dryRun: values['dry-run'] === true };
    try {
      policyOf(req); // bad input: exit 2 before anything is asked or changed
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const target = await maintenanceTarget('gc', values.data, values.store);
    const json = values.json === true;
    // Phase lines on stderr as the collection reaches them, wherever it runs.
    const progress = json ? undefined : (m: string) => console.error(m);
    let report: GcReport;
    if (target.kind === 'file') {
      report = await diskAdmin(target.root).collect(req, progress);
    } else if (target.kind === 's3') {
      const admin = (await import('../gc/scaleout-admin.js')).scaleoutAdmin(target.addr);
      try {
        report = await admin.collect(req, progress);
      } finally {
        await admin.close();
      }
    } else {
      const { AdminClient } = await import('../grpc/admin-client.js');
      const client = new AdminClient(target.addr);
      try {
        report = JSON.parse(await client.collect(req, progress)) as GcReport;
      } finally {
        client.close();
      }
    }
    console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
    return 0;
  },
};
