#!/usr/bin/env -S node --max-semi-space-size=4 --initial-old-space-size=32
// Node flags (the same in package.json, bin/nix-castore-hook and nix/package.nix):
// 4 MiB semi-spaces keep idle young generations small; an old generation
// of at least 32 MB stops a small heap from running a full collection every
// ~12 MB of network buffers (README, Benchmarks: "Blob Put").
// nix-castore: get Nix store paths into a tvix-compatible castore and back.
// Commands are loaded on demand: the queued post-build hook must start fast,
// without loading gRPC, zod or cosmiconfig.
import { HelpRequested, UsageError, type Command } from '../util/usage.js';
import { CastoreError } from '../castore/errors.js';
import { withHint } from './error-hints.js';

interface Entry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

const COMMANDS: Entry[] = [
  { name: 'copy', summary: 'upload a Nix closure (verified, in dependency order, resumable)', load: async () => (await import('./copy-command.js')).copyCommand },
  { name: 'daemon', summary: 'serve the store over gRPC (tvix-store compatible)', load: async () => (await import('./daemon-command.js')).daemonCommand },
  { name: 'import', summary: 'import an existing Nix binary cache (file:// or http)', load: async () => (await import('./import-command.js')).importCommand },
  { name: 'nar', summary: "write a store path's NAR to stdout", load: async () => (await import('./nar-command.js')).narCommand },
  { name: 'path-info', summary: 'show what the store knows about store paths', load: async () => (await import('./path-info-command.js')).pathInfoCommand },
  { name: 'hook', summary: 'post-build-hook: push new build outputs, or queue them', load: async () => (await import('./hook-command.js')).hookCommand },
  { name: 'drain', summary: 'upload what the post-build hook queued', load: async () => (await import('./drain-command.js')).drainCommand },
  { name: 'health', summary: "check (or wait for) a daemon's health", load: async () => (await import('./health-command.js')).healthCommand },
  { name: 'stats', summary: 'count what a store holds and how much deduplication saves', load: async () => (await import('./stats-command.js')).statsCommand },
  { name: 'fsck', summary: 'check an on-disk or S3 + PostgreSQL store for corruption and missing objects', load: async () => (await import('./fsck-command.js')).fsckCommand },
  { name: 'gc', summary: 'delete what the retention policy does not keep (pins, --keep-since, --max-size)', load: async () => (await import('./gc-command.js')).gcCommand },
  { name: 'pin', summary: 'name store paths that gc must keep (add, list, rm)', load: async () => (await import('./pin-command.js')).pinCommand },
  { name: 'config', summary: 'print the effective configuration and where each value comes from', load: async () => (await import('./config-command.js')).configCommand },
];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: nix-castore <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'nix-castore <command> --help' (or 'nix-castore help <command>') for a command's options;",
    "'nix-castore --version' for the version.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // 'help COMMAND' is 'COMMAND --help'.
  if (name === 'help' && rest.length > 0) return main([rest[0], '--help']);
  if (!name) {
    console.error(mainHelp()); // a usage error: on stderr, exit 2
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(mainHelp());
    return 0;
  }
  if (name === '--version') {
    console.log('nix-castore 0.1.0');
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) throw new UsageError(`unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`);
  const command = await entry.load();
  try {
    return await command.run(rest);
  } catch (err) {
    if (!(err instanceof HelpRequested)) throw err;
    console.log(command.help);
    return 0;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError || (err instanceof CastoreError && err.kind === 'invalid')) {
      console.error(`nix-castore: ${err.message}`);
      process.exit(2);
    }
    console.error(`nix-castore: ${withHint(err)}`);
    if (process.env.NIX_CASTORE_DEBUG && err instanceof Error) console.error(err.stack);
    process.exit(1);
  },
);
