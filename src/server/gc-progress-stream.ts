// CollectGarbageWithProgress: the collector's phase lines as it reaches
// them, then its report. The call's own buffer holds a few messages; once
// it is full (the caller reads slowly) only the latest line waits for room,
// since lines are progress, not a record. The report is always sent.
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { CollectGarbageEvent, CollectGarbageRequest } from '../grpc/admin-messages.js';
import type { GcReport } from '../gc/report.js';
import { toStatus, type StatusObject } from '../grpc/status.js';

type ProgressCall = ServerWritableStream<CollectGarbageRequest, CollectGarbageEvent>;

/** Starts the call's collection with this log, or says why it does not run. */
export type StartCollection = (call: ProgressCall, log: (msg: string) => void) => Promise<GcReport> | StatusObject;

export function collectWithProgress(start: StartCollection, log: (msg: string) => void) {
  return (call: ProgressCall) => {
    const progress = progressStream(call);
    const started = start(call, (msg) => {
      log(msg);
      progress.line(msg);
    });
    if (!(started instanceof Promise)) return void call.emit('error', started);
    started.then(
      (report) => progress.finish(JSON.stringify(report)),
      (err) => call.emit('error', toStatus(err)),
    );
  };
}

interface ProgressStream {
  line(msg: string): void;
  /** Sends the report, the last message, and ends the call. */
  finish(reportJson: string): void;
}

function progressStream(call: ProgressCall): ProgressStream {
  let full = false;
  let latest: string | undefined;
  const write = (e: CollectGarbageEvent) => {
    if (call.write(e) || full) return;
    full = true;
    call.once('drain', () => {
      full = false;
      const line = latest;
      latest = undefined;
      if (line !== undefined && !call.cancelled) write({ log: line });
    });
  };
  return {
    line(msg) {
      if (call.cancelled) return;
      if (full) latest = msg;
      else write({ log: msg });
    },
    finish(reportJson) {
      if (call.cancelled) return;
      if (latest !== undefined) call.write({ log: latest });
      latest = undefined;
      call.write({ reportJson });
      call.end();
    },
  };
}
