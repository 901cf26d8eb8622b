// Progress of a copy on stderr: one redrawn status line on a terminal,
// plain log lines otherwise (CI logs, Nix builds). A Nix build's stderr is
// a pseudo-terminal, but Nix keeps it as a log of lines (and shows them
// prefixed): there, where Nix sets NIX_LOG_FD, redrawing would leave
// carriage returns and escape codes in the log and mangled lines on screen.
import type { CopyEvents } from '../upload/copy.js';

const fmtBytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
};

const fmtDuration = (s: number): string => (s < 60 ? `${Math.ceil(s)}s` : `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`);

export function progressReporter(stream: NodeJS.WriteStream = process.stderr, quiet = false): CopyEvents & { finish(): void } {
  const tty = stream.isTTY === true && !process.env.NIX_LOG_FD;
  const t0 = Date.now();
  let total = 0;
  let done = 0;
  let toRead = 0;
  let read = 0;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  const line = (final = false): string => {
    const secs = (Date.now() - t0) / 1000;
    const rate = read / Math.max(secs, 0.001);
    const eta = !final && rate > 0 && toRead > read ? ` ETA ${fmtDuration((toRead - read) / rate)}` : '';
    const of = toRead > 0 ? `/${fmtBytes(toRead)}` : ''; // 0: sizes unknown (a legacy closure file)
    return `copy: ${done}/${total} paths, ${fmtBytes(read)}${of} read, ${fmtBytes(rate)}/s${eta}`;
  };
  const draw = () => stream.write(`\r\x1b[K${line()}`);
  const print = (msg: string) => {
    if (quiet) return;
    if (tty) stream.write(`\r\x1b[K${msg}\n`);
    else stream.write(`${msg}\n`);
    if (tty) draw();
  };
  return {
    start(t, todo, bytes) {
      total = t;
      done = t - todo;
      toRead = bytes;
      if (quiet) return;
      const size = bytes > 0 || todo === 0 ? ` (${fmtBytes(bytes)})` : ''; // no NAR sizes in a legacy closure file
      print(`copy: ${t} paths in the closure, ${t - todo} already in the store, ${todo} to upload${size}`);
      if (tty) timer = setInterval(draw, 200);
    },
    bytesRead(n) {
      read += n;
    },
    pathDone(path, outcome, detail) {
      if (outcome !== 'skipped') done++;
      if (outcome === 'failed') print(`copy: FAILED ${path}: ${detail.reason}`);
      else if (outcome === 'uploaded' && !tty) print(`copy: uploaded ${path} (${fmtBytes(detail.bytesRead)})`);
    },
    log: (msg) => print(`copy: ${msg}`),
    /** Ends the live line with its final state; once (copy calls it on success and again on its way out). */
    finish() {
      if (finished) return;
      finished = true;
      if (timer) clearInterval(timer);
      if (tty && !quiet) stream.write(`\r\x1b[K${line(true)}\n`);
    },
  };
}
