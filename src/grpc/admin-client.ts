// The client of a daemon's nixcastore.v1.AdminService (pins and garbage
// collection), sending the write token like every other write.
import { adminServiceDef } from './definitions.js';
import { acquireClient } from './channel.js';
import { serverStream, unary } from './calls.js';
import { fromServiceError, isServiceError } from './status.js';
import { status } from './status-codes.js';
import { CastoreError } from '../castore/errors.js';
import type { CollectGarbageEvent, CollectGarbageRequest } from './admin-messages.js';

export interface RemoteGcRequest {
  keepSince?: string;
  maxSize?: string;
  grace?: string;
  memory?: string;
  dryRun?: boolean;
}

export class AdminClient {
  private readonly shared;
  private readonly def = adminServiceDef();

  constructor(addr: string) {
    this.shared = acquireClient(addr);
  }

  private async call<Req, Res>(m: import('@grpc/grpc-js').MethodDefinition<Req, Res>, req: Req, what: string): Promise<Res> {
    await this.shared.ready;
    await this.shared.answering();
    try {
      return await unary(this.shared.client, m, req);
    } catch (err) {
      throw fromServiceError(err, what);
    }
  }

  async setPin(name: string, storePaths: string[]): Promise<void> {
    await this.call(this.def.SetPin, { pin: { name, storePaths } }, 'SetPin');
  }

  async removePin(name: string): Promise<void> {
    await this.call(this.def.RemovePin, { name }, 'RemovePin');
  }

  async listPins(): Promise<{ name: string; paths: string[] }[]> {
    return (await this.call(this.def.ListPins, {}, 'ListPins')).pins.map((p) => ({ name: p.name, paths: p.storePaths }));
  }

  /**
   * Runs a collection and returns its report, as JSON text. `progress` gets
   * the collector's phase lines as the daemon reaches them; a daemon older
   * than CollectGarbageWithProgress sends none, only the report.
   */
  async collect(req: RemoteGcRequest, progress?: (line: string) => void): Promise<string> {
    const msg: CollectGarbageRequest = { keepSince: req.keepSince ?? '', maxSize: req.maxSize ?? '', grace: req.grace ?? '', dryRun: req.dryRun === true, memory: req.memory ?? '' };
    await this.shared.ready;
    await this.shared.answering();
    let report: string | undefined;
    let heard = false;
    const onEvent = (e: CollectGarbageEvent) => {
      heard = true;
      if ('log' in e) progress?.(e.log);
      else report = e.reportJson;
    };
    try {
      await serverStream(this.shared.client, this.def.CollectGarbageWithProgress, msg, onEvent);
    } catch (err) {
      // An older daemon lacks the method. A daemon with no collector answers
      // UNIMPLEMENTED too, to every admin method: its unary answer says so.
      if (!heard && isServiceError(err) && err.code === status.UNIMPLEMENTED) return (await this.call(this.def.CollectGarbage, msg, 'CollectGarbage')).reportJson;
      throw fromServiceError(err, 'CollectGarbageWithProgress');
    }
    if (report === undefined) throw new CastoreError('internal', 'CollectGarbageWithProgress: the daemon ended the call without a report');
    return report;
  }

  close(): void {
    this.shared.release();
  }
}
