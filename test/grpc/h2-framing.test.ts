// The lean client's pure parts: reassembling length-prefixed messages from
// DATA chunks cut anywhere, and reading statuses.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { MessageReader, framed } from '../../src/grpc/h2/framing.js';
import { codeForHttpStatus, decodeGrpcMessage, isGrpcContentType, type GrpcError } from '../../src/grpc/h2/status.js';

class Collect extends MessageReader {
  readonly messages: string[] = [];
  constructor(max = 1 << 20) {
    super(max);
  }
  protected message(payload: Buffer): void {
    this.messages.push(payload.toString());
  }
  feed(chunk: Buffer): GrpcError | undefined {
    return this.readData(chunk);
  }
  get partial(): boolean {
    return this.midMessage;
  }
}

/** Takes messages of at least `streamAt` bytes as pieces after their first `skip` bytes. */
class Pieces extends Collect {
  readonly pieces: Buffer[] = [];
  constructor(
    private readonly streamAt: number,
    private readonly skip: number,
  ) {
    super();
  }
  protected override streamFrom(length: number, head: Buffer): number | undefined {
    if (length < this.streamAt || head.length < this.skip) return undefined;
    this.messages.push(`streamed ${length} from ${head.subarray(0, this.skip).toString()}`);
    return this.skip;
  }
  protected override piece(bytes: Buffer): void {
    this.pieces.push(bytes);
  }
}

const MESSAGES = ['first', '', 'x'.repeat(300), 'last'];
const STREAM = Buffer.concat(MESSAGES.map((m) => framed(Buffer.from(m))));

describe('MessageReader', () => {
  it('reads the messages wherever the chunks are cut (one cut, then two)', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      const r = new Collect();
      assert.equal(r.feed(STREAM.subarray(0, i)), undefined);
      assert.equal(r.feed(STREAM.subarray(i)), undefined);
      assert.deepEqual(r.messages, MESSAGES, `cut at ${i}`);
      assert.equal(r.partial, false);
    }
    for (let i = 0; i < 40; i++) {
      for (let j = i; j < 60; j++) {
        const r = new Collect();
        for (const part of [STREAM.subarray(0, i), STREAM.subarray(i, j), STREAM.subarray(j)]) r.feed(part);
        assert.deepEqual(r.messages, MESSAGES, `cuts at ${i}, ${j}`);
      }
    }
  });

  it('reads byte by byte, and knows when it stopped inside a message', () => {
    const r = new Collect();
    for (let i = 0; i < STREAM.length - 1; i++) r.feed(STREAM.subarray(i, i + 1));
    assert.deepEqual(r.messages, MESSAGES.slice(0, -1));
    assert.equal(r.partial, true);
    r.feed(STREAM.subarray(-1));
    assert.deepEqual(r.messages, MESSAGES);
    assert.equal(r.partial, false);
  });

  it('refuses compressed messages and messages over the limit, also when the prefix is split', () => {
    const compressed = framed(Buffer.from('zz'));
    compressed[0] = 1;
    for (const cut of [0, 3]) {
      const r = new Collect();
      r.feed(compressed.subarray(0, cut));
      const err = r.feed(compressed.subarray(cut));
      assert.equal(err?.code, status.INTERNAL);
      assert.match(err!.details, /compressed/);
    }
    const big = framed(Buffer.alloc(101));
    for (const cut of [0, 2, 7]) {
      const r = new Collect(100);
      const err = r.feed(big.subarray(0, cut)) ?? r.feed(big.subarray(cut));
      assert.equal(err?.code, status.RESOURCE_EXHAUSTED);
      assert.match(err!.details, /101 vs\. 100/);
      assert.deepEqual(r.messages, []);
    }
  });
});

describe('MessageReader taking messages as pieces', () => {
  const big = 'HEAD' + 'y'.repeat(5000);
  const stream = Buffer.concat(['a', big, 'b'].map((m) => framed(Buffer.from(m))));

  it('passes a message that spans chunks on as views of the chunks, after the bytes it skips', () => {
    const chunks: Buffer[] = [];
    for (let off = 0; off < stream.length; off += 1000) chunks.push(stream.subarray(off, off + 1000));
    const r = new Pieces(100, 4);
    for (const c of chunks) assert.equal(r.feed(c), undefined);
    assert.deepEqual(r.messages, ['a', `streamed ${big.length} from HEAD`, 'b']);
    assert.equal(Buffer.concat(r.pieces).toString(), big.slice(4));
    // No copies: every piece shares memory with the chunk it arrived in.
    for (const p of r.pieces) assert.ok(chunks.some((c) => c.buffer === p.buffer), 'a piece was copied');
    assert.equal(r.partial, false);
  });

  it('knows it stopped inside a streamed message, wherever the chunks are cut', () => {
    for (let cut = 0; cut <= stream.length; cut += 97) {
      const r = new Pieces(100, 4);
      r.feed(stream.subarray(0, cut));
      const inside = r.messages.some((m) => m.startsWith('streamed')) && Buffer.concat(r.pieces).length < big.length - 4;
      if (inside) assert.equal(r.partial, true, `cut at ${cut}`);
      r.feed(stream.subarray(cut));
      assert.equal(r.partial, false);
      const streamed = r.messages.some((m) => m.startsWith('streamed'));
      // Streaming needs the prefix and the skipped bytes in one chunk; otherwise the message comes whole.
      if (streamed) assert.equal(Buffer.concat(r.pieces).toString(), big.slice(4), `cut at ${cut}`);
      else assert.deepEqual(r.messages, ['a', big, 'b'], `cut at ${cut}`);
    }
  });

  it('still hands on whole a message that fits in its chunk, or that the subclass declines', () => {
    const whole = new Pieces(100, 4);
    whole.feed(stream);
    assert.deepEqual(whole.messages, ['a', big, 'b']);
    const declined = new Pieces(1 << 20, 4);
    for (let off = 0; off < stream.length; off += 1000) declined.feed(stream.subarray(off, off + 1000));
    assert.deepEqual(declined.messages, ['a', big, 'b']);
    assert.deepEqual(declined.pieces, []);
  });
});

describe('statuses', () => {
  it('percent-decodes grpc-message, keeping malformed escapes', () => {
    assert.equal(decodeGrpcMessage('plain text'), 'plain text');
    assert.equal(decodeGrpcMessage('a%20b%0Ac%E2%9C%93'), 'a b\nc✓');
    assert.equal(decodeGrpcMessage('100% sure %zz'), '100% sure %zz');
    assert.equal(decodeGrpcMessage('bad %E2%9C and ok %41'), 'bad \ufffd and ok A');
  });

  it('maps HTTP statuses of non-gRPC answers as the gRPC spec says', () => {
    const expected: [number | undefined, status][] = [
      [400, status.INTERNAL],
      [401, status.UNAUTHENTICATED],
      [403, status.PERMISSION_DENIED],
      [404, status.UNIMPLEMENTED],
      [429, status.UNAVAILABLE],
      [502, status.UNAVAILABLE],
      [503, status.UNAVAILABLE],
      [504, status.UNAVAILABLE],
      [500, status.UNKNOWN],
      [undefined, status.UNKNOWN],
    ];
    for (const [http, code] of expected) assert.equal(codeForHttpStatus(http), code, `HTTP ${http}`);
  });

  it('recognises gRPC content types', () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc; charset=utf-8']) assert.ok(isGrpcContentType(ct), ct);
    for (const ct of [undefined, 'application/grpcx', 'text/html', 'application/grpc-web']) assert.ok(!isGrpcContentType(ct), ct);
  });
});
