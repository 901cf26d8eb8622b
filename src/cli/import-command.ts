import { parse, positiveIntFlag, UsageError, type Command } from '../util/usage.js';
import { openConfiguredStore, parseStorePathArg } from './path-info-command.js';
import { readTokenFile } from '../server/access.js';

const HELP = `Usage: nix-castore import [--store ADDR] [--jobs N] [--quiet] [--json] SOURCE [STOREPATH...]

Moves an existing Nix binary cache into the store. SOURCE is a binary cache
directory (file:///abs/dir or /abs/dir, as 'nix copy --to file://…' writes
it) or an http(s):// binary cache (another nix-castore daemon's --http, an
nginx/S3-served cache, …).

Without STOREPATHs every narinfo of a file:// cache is imported; an http
cache cannot be listed, so name the paths there: their closures are
imported. Each NAR is downloaded, decompressed (xz, zstd, bzip2 or none),
checked against the narinfo's NarHash and NarSize (and FileHash when it has
one) and ingested into the castore, whose files are deduplicated against
everything already stored. A path is published only after its references.
Paths already in the store are skipped, so an interrupted import is resumed
by running it again. Signatures are kept as the narinfos carry them.

Progress goes to stderr, one line per path; at the end, how many NAR bytes
were read and how many bytes the store actually had to add.

Options:
      --store ADDR  the store to import into (otherwise BLOB_SERVICE_ADDR
                    etc., the config file, then grpc+http://[::1]:8000); also
                    file:///abs/dir, s3://…, grpc+unix:///socket.
  -j, --jobs N      NARs downloaded and ingested at once (default 4).
  -q, --quiet       no progress lines, only the summary and failures.
      --json        print the summary as JSON on stdout.
  -h, --help        show this help.

An http SOURCE that needs a token: NIX_CASTORE_AUTH_TOKEN_FILE names a file
holding it (sent as Authorization: Bearer).

Exit status: 0 everything imported (or already there), 1 some paths
failed (listed; the others are imported), 2 bad input or usage.`;

export const importCommand: Command = {
  name: 'import',
  summary: 'import an existing Nix binary cache (file:// or http)',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(
      argv,
      { store: { type: 'string' }, jobs: { type: 'string', short: 'j' }, quiet: { type: 'boolean', short: 'q' }, json: { type: 'boolean' } },
      true,
    );
    if (positionals.length === 0) throw new UsageError('give the binary cache to import, e.g. file:///srv/cache or http://cache.example:8080');
    const jobs = positiveIntFlag(values.jobs, '--jobs', 4);
    const roots = positionals.slice(1).map(parseStorePathArg);
    const tokenFile = process.env.NIX_CASTORE_AUTH_TOKEN_FILE;
    const token = tokenFile ? await readTokenFile(tokenFile).catch((err: Error) => { throw new UsageError(`NIX_CASTORE_AUTH_TOKEN_FILE: ${err.message}`); }) : undefined;
    const { openSource, SourceError } = await import('../cache/cache-source.js');
    const { importCache, ImportError } = await import('../cache/import.js');
    let source;
    try {
      source = openSource(positionals[0], token);
    } catch (err) {
      if (err instanceof SourceError) throw new UsageError(err.message);
      throw err;
    }
    if (!source.list && roots.length === 0) throw new UsageError(`${source.where} cannot be listed: name the store paths to import (their closures are imported)`);

    const { store, where } = await openConfiguredStore(values.store);
    const started = process.hrtime.bigint();
    try {
      const log = (line: string) => process.stderr.write(`nix-castore import: ${line}\n`);
      let report;
      try {
        report = await importCache(source, store, roots.length ? roots : undefined, {
          jobs,
          progress: values.quiet ? (l) => l.startsWith('failed') && log(l) : log,
        });
      } catch (err) {
        if (err instanceof ImportError || err instanceof SourceError) {
          log(err.message);
          return 2;
        }
        throw err;
      }
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      const ratio = report.narBytes > 0 ? ` (${((100 * report.storedBytes) / report.narBytes).toFixed(1)}% of the NAR bytes)` : '';
      log(
        `${report.imported} imported, ${report.present} already there, ${report.failed.length} failed, of ${report.total} from ${source.where} into ${where} in ${secs.toFixed(1)} s; ` +
          `read ${report.narBytes} NAR bytes (${report.fileBytes} downloaded), stored ${report.storedBytes} new bytes${ratio}`,
      );
      if (values.json) console.log(JSON.stringify({ ...report, seconds: secs }));
      return report.failed.length > 0 ? 1 : 0;
    } finally {
      await store.close();
    }
  },
};
