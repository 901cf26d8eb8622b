// Reading `nix-castore fsck`'s text output, for the disk and the scale-out fsck tests.
import assert from 'node:assert/strict';
import type { CliResult } from '../copy/run-cli.js';

export function errorLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith('error: '));
}

/** Expects exit 1 and an error line `kind object: …` matching `what`, counted in the summary; returns the error lines. */
export function assertReported(r: CliResult, kind: string, object: string, what: RegExp): string[] {
  assert.equal(r.code, 1, `exit 1:\n${r.stdout}${r.stderr}`);
  const errors = errorLines(r.stdout);
  assert.ok(
    errors.some((l) => l.startsWith(`error: ${kind} ${object}: `) && what.test(l)),
    `an error line "${kind} ${object}: ${what}" in:\n${r.stdout}`,
  );
  assert.match(r.stdout, new RegExp(`fsck .*: ${errors.length} problems?, `), 'summary counts the problems');
  return errors;
}
