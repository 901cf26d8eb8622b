// Shared CLI plumbing: a usage error type (exit 2) and argument parsing that
// turns node:util's errors into messages that say what to fix.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Thrown by parse() for -h/--help: the entry point prints the command's help and exits 0. */
export class HelpRequested extends Error {
  override name = 'HelpRequested';
}

export interface Command {
  name: string;
  summary: string;
  help: string;
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    const parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    if ((parsed.values as { help?: boolean }).help) throw new HelpRequested('help requested');
    return parsed;
  } catch (err) {
    if (err instanceof HelpRequested) throw err;
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

export function positiveIntFlag(v: string | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${flag} takes a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

/** A size in bytes: a whole number, optionally with K, M or G (powers of 1024). */
export function byteSizeFlag(v: string | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * 1024 ** ('KMG'.indexOf((m[2] ?? ' ')[0].toUpperCase()) + 1) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${flag} takes a positive size in bytes (e.g. 268435456 or 256M), got ${JSON.stringify(v)}`);
  return n;
}
