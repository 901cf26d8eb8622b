#!/usr/bin/env node
// nix-castore: get Nix store paths into a tvix-compatible castore and back.
import { UsageError, type Command } from './usage.js';
import { daemonCommand } from './daemon-command.js';
import { copyCommand } from './copy-command.js';
import { configCommand } from './config-command.js';
import { healthCommand } from './health-command.js';
import { CastoreError } from '../castore/errors.js';

const COMMANDS: Command[] = [copyCommand, daemonCommand, healthCommand, configCommand];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: nix-castore <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'nix-castore <command> --help' for a command's options.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(mainHelp());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    console.log('nix-castore 0.1.0');
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`);
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError || (err instanceof CastoreError && err.kind === 'invalid')) {
      console.error(`nix-castore: ${err.message}`);
      process.exit(2);
    }
    console.error(`nix-castore: ${err instanceof Error ? err.message : err}`);
    if (process.env.NIX_CASTORE_DEBUG && err instanceof Error) console.error(err.stack);
    process.exit(1);
  },
);
