// Child process for test/server/batch-yield.test.ts: four maximum-size
// BlobBatchService.Has calls in parallel, on connections of their own, so
// that the test process only measures. Usage: has-flood.js SOCKET lean|deadline
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { blobBatchServiceDef } from '../../src/grpc/definitions.js';

export const FLOOD_DIGESTS = 123_000; // 34 bytes each on the wire: just under 4 MiB

/** A HasBlobsRequest of `n` random digests, encoded by hand. */
function hasRequest(n: number): Buffer {
  const out = Buffer.allocUnsafe(n * 34);
  const digests = randomBytes(n * 32);
  for (let i = 0; i < n; i++) {
    out[i * 34] = 0x0a;
    out[i * 34 + 1] = 32;
    digests.copy(out, i * 34 + 2, i * 32, i * 32 + 32);
  }
  return out;
}

async function main(socket: string, kind: string): Promise<void> {
  const clients = [0, 1, 2, 3].map(() => new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const reqs = clients.map(() => hasRequest(FLOOD_DIGESTS));
  const path = blobBatchServiceDef().Has.path;
  process.stdout.write('sending\n');
  const answers = await Promise.all(
    clients.map(
      (c, i) =>
        new Promise<Buffer>((resolve, reject) =>
          c.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, reqs[i], new grpc.Metadata(), kind === 'deadline' ? { deadline: Date.now() + 300_000 } : {}, (err, res) =>
            err ? reject(err) : resolve(res!),
          ),
        ),
    ),
  );
  // Field 1, packed: tag 0x0a, varint 123000 (f8 c0 07), then one byte per digest, all absent.
  for (const a of answers) {
    if (a.subarray(0, 4).compare(Buffer.from([0x0a, 0xf8, 0xc0, 0x07])) !== 0 || a.subarray(4, 4 + FLOOD_DIGESTS).some((b) => b !== 0)) {
      throw new Error(`unexpected answer ${a.subarray(0, 8).toString('hex')}…`);
    }
  }
  for (const c of clients) c.close();
}

main(process.argv[2], process.argv[3]).then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
