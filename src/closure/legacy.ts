/**
 * The exportReferencesGraph text file written without structured attrs
 * (closure.md §1.2, nix.md §3): for each path of the closure
 *
 *     <absolute store path>
 *     <deriver: empty, or a .drv store path>
 *     <number of references, decimal>
 *     <reference 1>
 *     …
 *
 * No NAR hashes or sizes: those stay undefined and must be computed.
 */
import { absolute, parseAbsolute } from '../nix/store-path.js';
import type { StorePath } from '../nix/store-path.js';
import { ClosureError, checkClosedLabelled, makeEntry } from './closure.js';
import type { Closure, ClosureEntry } from './closure.js';

function show(line: string): string {
  return JSON.stringify(line.length > 120 ? line.slice(0, 120) + '…' : line);
}

/** The exportReferencesGraph text format (closure.md §1.2): path, deriver line (may be empty or a .drv path), count, references. */
export function parseLegacyClosure(text: string, opts: { file: string }): Closure {
  const file = opts.file;
  const lines = text.split('\n');
  // The file ends with a newline, which leaves one empty string at the end.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  const entries: ClosureEntry[] = [];
  const startLines: number[] = [];
  let i = 0; // index into lines; line number = i + 1
  while (i < lines.length) {
    const n = entries.length;
    const startLine = i + 1;
    const at = (lineNo: number, p?: string) => `${file}: line ${lineNo}: entry ${n}${p === undefined ? '' : ` (${p})`}`;

    // path
    const pathLine = lines[i];
    if (pathLine === '') {
      throw new ClosureError(`${at(startLine)}: path: expected an absolute store path, got an empty line`);
    }
    let path: StorePath;
    try {
      path = parseAbsolute(pathLine);
    } catch (e) {
      throw new ClosureError(`${at(startLine)}: path: ${(e as Error).message}`);
    }
    const p = absolute(path);
    i++;

    // deriver
    if (i >= lines.length) {
      throw new ClosureError(
        `${at(startLine, p)}: truncated: the file ends after the path; expected a deriver line (usually empty) and the reference count`,
      );
    }
    const deriverLine = lines[i];
    let deriver: StorePath | undefined;
    if (deriverLine !== '') {
      if (/^(md5|sha1|sha256|sha512)[:-]/.test(deriverLine)) {
        throw new ClosureError(
          `${at(i + 1, p)}: deriver: expected an empty line or a .drv store path, got ${show(deriverLine)} ` +
            '(this looks like a NAR hash: the "--hash-given" registration format with hash and size lines is not supported)',
        );
      }
      try {
        deriver = parseAbsolute(deriverLine);
      } catch (e) {
        throw new ClosureError(`${at(i + 1, p)}: deriver: expected an empty line or a .drv store path: ${(e as Error).message}`);
      }
      if (!deriver.name.endsWith('.drv')) {
        throw new ClosureError(`${at(i + 1, p)}: deriver: expected an empty line or a .drv store path, got ${show(deriverLine)}`);
      }
    }
    i++;

    // reference count
    if (i >= lines.length) {
      throw new ClosureError(`${at(startLine, p)}: truncated: the file ends after the deriver line; expected the reference count`);
    }
    const countLine = lines[i];
    const count = /^[0-9]{1,9}$/.test(countLine) ? Number(countLine) : NaN;
    if (Number.isNaN(count)) {
      const why = /^[0-9]+$/.test(countLine) ? ' (implausibly large)' : '';
      throw new ClosureError(`${at(i + 1, p)}: reference count: expected a decimal number, got ${show(countLine)}${why}`);
    }
    i++;

    // references
    const references: StorePath[] = [];
    for (let k = 0; k < count; k++, i++) {
      if (i >= lines.length) {
        throw new ClosureError(
          `${at(startLine, p)}: truncated: the reference count is ${count} but the file ends after ${k} reference(s)`,
        );
      }
      try {
        references.push(parseAbsolute(lines[i]));
      } catch (e) {
        throw new ClosureError(`${at(i + 1, p)}: references[${k}]: ${(e as Error).message}`);
      }
    }

    entries.push(makeEntry({ path, references, deriver }));
    startLines.push(startLine);
  }

  const closure: Closure = { entries, source: file };
  checkClosedLabelled(closure, (k) => `line ${startLines[k]}: entry ${k}`);
  return closure;
}
