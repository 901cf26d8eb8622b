import { parse, UsageError, type Command } from '../util/usage.js';
import { openConfiguredStore } from './path-info-command.js';
import { probeScaleout, redactAddr } from '../scaleout/probe.js';
import { storeStats, dedupRatio, storedBytes, type StoreStats } from '../store/store-stats.js';

const HELP = `Usage: nix-castore stats [--store ADDR] [--json]

Counts what a store holds: PathInfos, directories and blobs; the sum of the
NAR sizes of its paths (what a NAR-level binary cache would store,
uncompressed); the bytes nix-castore actually stores (distinct blob bytes
plus directory encodings); and their ratio, the deduplication.

Counting reads the whole index (on-disk: the pack indexes, blob files and
PathInfos; S3 + PostgreSQL: the tables; a daemon counts its own store,
nixcastore.v1.StoreStats), so it takes a while on a large store.

Options:
      --store ADDR  the store to count (otherwise PATH_INFO_SERVICE_ADDR etc.,
                    the config file, then grpc+http://[::1]:8000): file:///abs/dir,
                    s3://BUCKET/PREFIX?index=postgres://…, grpc+unix:///socket,
                    grpc+http://host:port, …
      --json        one JSON object: pathInfos, narBytes, directories,
                    directoryBytes, blobs, blobBytes, storedBytes,
                    dedupRatio (null for an empty store).
  -h, --help        show this help.

Exit status: 0 counted, 1 the store could not be counted, 2 bad usage.`;

export const statsCommand: Command = {
  name: 'stats',
  summary: 'count what a store holds and how much deduplication saves',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(argv, { store: { type: 'string' }, json: { type: 'boolean' } }, true);
    if (positionals.length) throw new UsageError(`stats takes no arguments, got ${JSON.stringify(positionals[0])}`);
    const { store, where, addrs } = await openConfiguredStore(values.store, 'stats');
    try {
      await probeScaleout(addrs);
      const s = await storeStats(store);
      console.log(values.json ? JSON.stringify(statsJson(s)) : statsText(s, redactAddr(where)));
      return 0;
    } finally {
      await store.close();
    }
  },
};

export function statsJson(s: StoreStats) {
  return { ...s, storedBytes: storedBytes(s), dedupRatio: dedupRatio(s) ?? null };
}

const count = (n: number) => n.toLocaleString('en-US');

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]} (${count(n)} bytes)`;
}

function statsText(s: StoreStats, where: string): string {
  const ratio = dedupRatio(s);
  return [
    `store:           ${where}`,
    `PathInfos:       ${count(s.pathInfos)}`,
    `directories:     ${count(s.directories)} (${bytes(s.directoryBytes)})`,
    `blobs:           ${count(s.blobs)} (${bytes(s.blobBytes)})`,
    `NAR bytes:       ${bytes(s.narBytes)}  (sum of NAR sizes: what a NAR cache would store)`,
    `stored bytes:    ${bytes(storedBytes(s))}  (blobs + directories)`,
    `deduplication:   ${ratio === undefined ? '- (empty store)' : `${ratio.toFixed(2)}× (NAR bytes / stored bytes)`}`,
  ].join('\n');
}
