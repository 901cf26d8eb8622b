// The client of a daemon's nixcastore.v1.AdminService (pins and garbage
// collection), sending the write token like every other write.
import { adminServiceDef } from './definitions.js';
import { acquireClient } from './channel.js';
import { unary } from './calls.js';
import { fromServiceError } from './status.js';

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

  /** The report, as JSON text. */
  async collect(req: RemoteGcRequest): Promise<string> {
    const res = await this.call(
      this.def.CollectGarbage,
      { keepSince: req.keepSince ?? '', maxSize: req.maxSize ?? '', grace: req.grace ?? '', dryRun: req.dryRun === true, memory: req.memory ?? '' },
      'CollectGarbage',
    );
    return res.reportJson;
  }

  close(): void {
    this.shared.release();
  }
}
