// Child process for tests: opens a Put stream to a daemon, sends some data
// without ever finishing the stream, prints "sent" and waits to be killed —
// a client that crashes mid-upload.
import * as grpc from '@grpc/grpc-js';
import { blobServiceDef, directoryServiceDef } from '../../src/grpc/definitions.js';

const [socket, kind, amount] = process.argv.slice(2);
const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());

async function main(): Promise<void> {
  if (kind === 'blob') {
    const def = blobServiceDef().Put;
    const call = client.makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, () => {});
    const chunk = Buffer.alloc(1024 * 1024, 0xab);
    for (let i = 0; i < Number(amount); i++) {
      if (!call.write({ data: chunk })) await new Promise((r) => call.once('drain', r));
    }
  } else {
    const def = directoryServiceDef().Put;
    const call = client.makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, () => {});
    call.write({ directories: [], files: [], symlinks: [{ name: Buffer.from(amount), target: Buffer.from('t') }] });
  }
  // Let the last frames leave before reporting.
  await new Promise((r) => setTimeout(r, 200));
  process.stdout.write('sent\n');
  await new Promise(() => {});
}
void main();
