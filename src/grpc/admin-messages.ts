// Messages of nixcastore.v1.AdminService (protos/nixcastore/v1/admin.proto).
import { encodeWith, type ProtoWriter } from '../proto/writer.js';
import { readFields, expectLen, expectVarint } from '../proto/reader.js';
import type { Codec } from '../castore/messages.js';

export interface Pin {
  name: string;
  storePaths: string[];
}
export interface SetPinRequest {
  pin?: Pin;
}
export interface RemovePinRequest {
  name: string;
}
export interface ListPinsResponse {
  pins: Pin[];
}
export interface CollectGarbageRequest {
  keepSince: string;
  maxSize: string;
  grace: string;
  dryRun: boolean;
  /** Field 5, added later: '' from older clients. */
  memory: string;
}
export interface CollectGarbageResponse {
  reportJson: string;
}
/** One message of CollectGarbageWithProgress's stream (a oneof): a progress line, or the report, last. */
export type CollectGarbageEvent = { log: string } | { reportJson: string };
export type Empty = Record<string, never>;

const text = (b: Buffer): string => b.toString('utf8');
const writePin = (w: ProtoWriter, p: Pin): void => {
  w.string(1, p.name);
  for (const s of p.storePaths) w.bytes(2, Buffer.from(s, 'utf8'), true);
};
function readPin(buf: Buffer): Pin {
  const p: Pin = { name: '', storePaths: [] };
  for (const f of readFields(buf)) {
    if (f.field === 1) p.name = text(expectLen(f));
    else if (f.field === 2) p.storePaths.push(text(expectLen(f)));
  }
  return p;
}

export const EmptyCodec: Codec<Empty> = {
  encode: () => Buffer.alloc(0),
  decode: (buf) => {
    for (const _ of readFields(buf)); // still reject malformed bytes
    return {};
  },
};

export const SetPinRequestCodec: Codec<SetPinRequest> = {
  encode: (m) => encodeWith((w, v: SetPinRequest) => w.message(1, v.pin, writePin), m),
  decode: (buf) => {
    const m: SetPinRequest = {};
    for (const f of readFields(buf)) if (f.field === 1) m.pin = readPin(expectLen(f));
    return m;
  },
};

export const RemovePinRequestCodec: Codec<RemovePinRequest> = {
  encode: (m) => encodeWith((w, v: RemovePinRequest) => w.string(1, v.name), m),
  decode: (buf) => {
    const m: RemovePinRequest = { name: '' };
    for (const f of readFields(buf)) if (f.field === 1) m.name = text(expectLen(f));
    return m;
  },
};

export const ListPinsResponseCodec: Codec<ListPinsResponse> = {
  encode: (m) =>
    encodeWith((w, v: ListPinsResponse) => {
      for (const p of v.pins) w.message(1, p, writePin);
    }, m),
  decode: (buf) => {
    const m: ListPinsResponse = { pins: [] };
    for (const f of readFields(buf)) if (f.field === 1) m.pins.push(readPin(expectLen(f)));
    return m;
  },
};

export const CollectGarbageRequestCodec: Codec<CollectGarbageRequest> = {
  encode: (m) => encodeWith((w, v: CollectGarbageRequest) => w.string(1, v.keepSince).string(2, v.maxSize).string(3, v.grace).bool(4, v.dryRun).string(5, v.memory), m),
  decode: (buf) => {
    const m: CollectGarbageRequest = { keepSince: '', maxSize: '', grace: '', dryRun: false, memory: '' };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.keepSince = text(expectLen(f));
      else if (f.field === 2) m.maxSize = text(expectLen(f));
      else if (f.field === 3) m.grace = text(expectLen(f));
      else if (f.field === 4) m.dryRun = expectVarint(f) !== 0;
      else if (f.field === 5) m.memory = text(expectLen(f));
    }
    return m;
  },
};

export const CollectGarbageResponseCodec: Codec<CollectGarbageResponse> = {
  encode: (m) => encodeWith((w, v: CollectGarbageResponse) => w.string(1, v.reportJson), m),
  decode: (buf) => {
    const m: CollectGarbageResponse = { reportJson: '' };
    for (const f of readFields(buf)) if (f.field === 1) m.reportJson = text(expectLen(f));
    return m;
  },
};

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

export const CollectGarbageEventCodec: Codec<CollectGarbageEvent> = {
  // Oneof members are written even when empty, so the one set is always on the wire.
  encode: (m) => encodeWith((w, v: CollectGarbageEvent) => ('log' in v ? w.bytes(1, utf8(v.log), true) : w.bytes(2, utf8(v.reportJson), true)), m),
  decode: (buf) => {
    let m: CollectGarbageEvent = { log: '' };
    for (const f of readFields(buf)) {
      if (f.field === 1) m = { log: text(expectLen(f)) };
      else if (f.field === 2) m = { reportJson: text(expectLen(f)) };
    }
    return m;
  },
};
