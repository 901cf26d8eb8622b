// A minimal grpc.health.v1 client: Check("") → the status name, or the
// reason the daemon could not be asked.
import * as grpc from '@grpc/grpc-js';

const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

export function checkHealth(target: string, tls = false, timeoutMs = 2000): Promise<string> {
  const client = new grpc.Client(target, tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure());
  return new Promise<string>((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      () => Buffer.alloc(0), // HealthCheckRequest{service: ""}
      (b: Buffer) => b,
      {},
      { deadline: Date.now() + timeoutMs },
      (err, res) => {
        // grpc-js's details end with its resolver's notes ('. Resolution note: '): the cause is enough.
        if (err) return resolve(`unreachable: ${(err.details || err.message).replace(/^No connection established\. Last error: (Error: )?/, '').replace(/\.? ?Resolution note: .*$/, '')}`);
        // HealthCheckResponse{status = 1: enum}: 08 <status>, or empty for UNKNOWN.
        resolve(STATUS[res && res.length >= 2 && res[0] === 0x08 ? res[1] : 0] ?? 'UNKNOWN');
      },
    );
  }).finally(() => client.close());
}
