// grpc-js takes a request body that ends inside a message as complete (it
// answers for the whole messages before the cut), and takes a message whose
// compressed flag is set without a negotiated grpc-encoding as raw bytes.
// The lean path (lean-call.ts) refuses both with INTERNAL, as grpc-go and
// tonic do. This guard gives grpc-js's calls the same answer: it follows the
// message framing of each stream it hands to grpc-js and, on such an
// error, answers INTERNAL itself and stops passing the stream's data and
// end to grpc-js, which then sees only the stream closing (a cancelled
// call: nothing is published).
//
// It also counts each message being reassembled for grpc-js, at its
// declared length, against the daemon's budget for buffered request bytes
// (request-budget.ts), until the message is complete or the stream closes;
// a message the budget cannot take is answered RESOURCE_EXHAUSTED.
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { PREFIX_BYTES } from '../grpc/h2/framing.js';
import type { Holding } from '../util/byte-budget.js';
import { overBudget } from './request-budget.js';

type Listener = (...args: unknown[]) => void;

/**
 * Hands `stream` to grpc-js (`handOver` adds its listeners) behind the
 * framing check: grpc-js's 'data' and 'end' listeners are wrapped so that
 * they no longer fire once the guard has answered.
 */
export function handOverGuarded(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, handOver: () => void, holding: Holding): void {
  const enc = headers['grpc-encoding'];
  const compressed = enc !== undefined && enc !== 'identity';
  let refused = false;
  // Framing state: bytes of the current prefix seen, its bytes, payload bytes still to come.
  let prefixSeen = 0;
  const prefix = Buffer.alloc(PREFIX_BYTES);
  let payloadLeft = 0;
  let declared = 0;
  // grpc-js keeps what it was given of a refused message until the stream closes.
  stream.once('close', () => holding.release());

  const refuse = (details: string, code = status.INTERNAL) => {
    refused = true;
    if (stream.destroyed || stream.closed) return;
    if (!stream.headersSent) {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURI(details) },
        { endStream: true },
      );
    } else stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    stream.resume(); // whatever the client still sends is read and dropped
  };

  const onData = (chunk: Buffer) => {
    if (refused) return;
    let pos = 0;
    while (pos < chunk.length) {
      if (payloadLeft > 0) {
        const n = Math.min(payloadLeft, chunk.length - pos);
        payloadLeft -= n;
        pos += n;
        continue;
      }
      const n = Math.min(PREFIX_BYTES - prefixSeen, chunk.length - pos);
      chunk.copy(prefix, prefixSeen, pos, pos + n);
      prefixSeen += n;
      pos += n;
      if (prefixSeen < PREFIX_BYTES) break;
      prefixSeen = 0;
      if (prefix[0] !== 0 && !compressed) {
        return refuse(`received a compressed message (flag ${prefix[0]}), but no compression was negotiated`);
      }
      payloadLeft = declared = prefix.readUInt32BE(1);
    }
    // Charged before grpc-js buffers the message's bytes; a message that ends in this chunk is not held.
    if (!holding.set(payloadLeft > 0 ? declared : 0)) refuse(overBudget(holding).message, status.RESOURCE_EXHAUSTED);
  };
  const onEnd = () => {
    if (!refused && (prefixSeen > 0 || payloadLeft > 0)) refuse('the request ended inside a message');
  };
  stream.on('data', onData);
  stream.on('end', onEnd);

  const before = { data: new Set(stream.listeners('data')), end: new Set(stream.listeners('end')) };
  handOver();
  for (const event of ['data', 'end'] as const) {
    for (const l of stream.listeners(event) as Listener[]) {
      if (before[event].has(l)) continue;
      stream.removeListener(event, l);
      stream.on(event, function (this: unknown, ...args: unknown[]) {
        if (!refused) l.apply(this, args);
      });
    }
  }
}
