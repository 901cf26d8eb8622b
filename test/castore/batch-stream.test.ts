// PutBlobsParser against PutBlobsRequestCodec.decode: the same blobs from
// the same bytes wherever the pieces are cut, blobs within a piece as
// views of it, unknown fields skipped, malformed input refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PutBlobsParser } from '../../src/castore/batch-stream.js';
import { PutBlobsRequestCodec, type BatchBlob } from '../../src/castore/batch-messages.js';
import { blake3 } from '../../src/castore/digest.js';
import { ProtoDecodeError } from '../../src/proto/reader.js';

const same = (a: BatchBlob[], b: BatchBlob[]) =>
  assert.deepEqual(
    a.map((x) => [Buffer.from(x.digest).toString('hex'), Buffer.from(x.data).toString('hex')]),
    b.map((x) => [Buffer.from(x.digest).toString('hex'), Buffer.from(x.data).toString('hex')]),
  );

function parse(msg: Buffer, cuts: number[]): PutBlobsParser {
  const p = new PutBlobsParser(msg.length);
  let from = 0;
  for (const c of [...cuts, msg.length]) {
    p.feed(msg.subarray(from, c));
    from = c;
  }
  assert.equal(p.complete, true);
  return p;
}

const blobs = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(300, 3), Buffer.alloc(20_000, 4), Buffer.from('tail')].map((data) => ({ digest: blake3(data), data }));
const MSG = PutBlobsRequestCodec.encode({ blobs });

describe('PutBlobsParser', () => {
  it('the blobs of PutBlobsRequestCodec.decode, wherever the pieces are cut', () => {
    const want = PutBlobsRequestCodec.decode(MSG).blobs;
    for (let i = 0; i <= MSG.length; i += 7) same(parse(MSG, [i]).blobs, want);
    for (let i = 0; i < 200; i += 3) for (let j = i; j < 400; j += 11) same(parse(MSG, [i, j]).blobs, want);
    const bytewise = Array.from({ length: MSG.length - 1 }, (_, i) => i + 1);
    same(parse(MSG, bytewise).blobs, want);
  });

  it('decodes a blob within one piece in place, and copies one that spans pieces', () => {
    const p = parse(MSG, []);
    for (const b of p.blobs) if (b.data.length > 0) assert.equal(b.data.buffer, MSG.buffer);
    const q = parse(MSG, [MSG.length - 10_000]);
    assert.notEqual(q.blobs[3].data.buffer, MSG.buffer, 'the large blob spans the cut');
    assert.equal(q.blobs[4].data.buffer, MSG.buffer);
  });

  it('given the whole message the pieces are views of, a blob that spans pieces is a view of it too', () => {
    const want = PutBlobsRequestCodec.decode(MSG).blobs;
    for (const cut of [1, 40, MSG.length - 10_000, MSG.length - 3]) {
      const whole = Buffer.from(MSG);
      const p = new PutBlobsParser(whole.length, whole);
      p.feed(whole.subarray(0, cut));
      p.feed(whole.subarray(cut));
      same(p.blobs, want);
      for (const b of p.blobs) if (b.data.length > 0) assert.equal(b.data.buffer, whole.buffer, `cut at ${cut}`);
    }
  });

  it('skips unknown fields of every wire type, as the codec does', () => {
    const unknown = Buffer.from([
      0x10, 0x96, 0x01, // field 2, varint
      0x19, 1, 2, 3, 4, 5, 6, 7, 8, // field 3, fixed64
      0x25, 1, 2, 3, 4, // field 4, fixed32
      0x2a, 0x03, 9, 9, 9, // field 5, length-delimited
      0x32, 0x00, // field 6, empty
    ]);
    const msg = Buffer.concat([unknown, MSG, unknown]);
    const want = PutBlobsRequestCodec.decode(msg).blobs;
    assert.equal(want.length, blobs.length);
    for (let i = 0; i <= msg.length; i++) same(parse(msg, [i]).blobs, want);
  });

  it('refuses what the codec refuses: truncation, bad wire types, lengths past the end', () => {
    const bad = [
      MSG.subarray(0, MSG.length - 1), // a blob cut short
      Buffer.from([0x0a]), // a key without its length
      Buffer.from([0x0a, 0x05, 1]), // a length past the end
      Buffer.from([0x0b]), // wire type 3 (groups)
      Buffer.from([0x02, 0x00]), // field number 0
      Buffer.from([0x10, 0x80]), // a varint cut short
      Buffer.from([0x19, 1, 2]), // a fixed64 cut short
      Buffer.from([0x0a, 0x02, 0x0a, 0x05]), // a Blob whose digest field runs past its end
    ];
    for (const msg of bad) {
      assert.throws(() => PutBlobsRequestCodec.decode(msg), ProtoDecodeError, `codec: ${msg.toString('hex')}`);
      for (let i = 0; i <= msg.length; i++) {
        assert.throws(() => parse(msg, [i]), ProtoDecodeError, `parser, cut at ${i}: ${msg.toString('hex')}`);
      }
    }
  });
});
