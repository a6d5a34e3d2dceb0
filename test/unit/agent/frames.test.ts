import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import {
  type Frame, FrameDecoder, FrameKind, FrameWriter, HEADER_BYTES, MAX_DATA_PAYLOAD, MAX_JSON_PAYLOAD, encodeFrame, encodeHeader, jsonPayload,
} from '../../../src/agent/protocol/frames.js';
import { lostError } from '../../../src/agent/protocol/messages.js';
import { TsmError, isTsmError } from '../../../src/errors/errors.js';

function decodeAll(bytes: Buffer, chunk: number): Promise<{ frames: Frame[]; error?: unknown }> {
  return new Promise((resolve) => {
    const d = new FrameDecoder();
    const frames: Frame[] = [];
    d.on('data', (f: Frame) => frames.push(f));
    d.on('error', (error) => resolve({ frames, error }));
    d.on('end', () => resolve({ frames }));
    for (let i = 0; i < bytes.length; i += chunk) d.write(bytes.subarray(i, i + chunk));
    d.end();
  });
}

const sample = (): Buffer => Buffer.concat([
  encodeFrame(FrameKind.JSON, 0, Buffer.from('{"type":"call"}')),
  encodeFrame(FrameKind.DATA, 7, Buffer.alloc(70_000, 0xab)),
  encodeFrame(FrameKind.DATA, 7, Buffer.alloc(0)),
  encodeFrame(FrameKind.END, 7),
  encodeFrame(FrameKind.ABORT, 9, Buffer.from('{"code":"EIO","message":"x"}')),
]);

test('decoder: same frames whatever the chunking', async () => {
  for (const chunk of [1, 2, 8, 9, 10, 4096, 1 << 20]) {
    const { frames, error } = await decodeAll(sample(), chunk);
    assert.equal(error, undefined);
    // a DATA payload may come in pieces (as its bytes arrive): join consecutive pieces of one frame
    const data = frames.filter((f) => f.kind === FrameKind.DATA && f.payload.length > 0);
    assert.equal(Buffer.concat(data.map((f) => f.payload)).length, 70_000);
    assert.ok(data.every((f) => f.stream === 7 && f.payload.every((b) => b === 0xab)));
    assert.ok(data.length <= Math.ceil(70_000 / chunk) + 1, `${data.length} pieces for chunks of ${chunk}`);
    const rest = frames.filter((f) => !(f.kind === FrameKind.DATA && f.payload.length > 0));
    assert.deepEqual(rest.map((f) => [f.kind, f.stream, f.payload.length]), [[1, 0, 15], [2, 7, 0], [3, 7, 0], [4, 9, 28]]);
  }
});

test('decoder: oversized, unknown, misplaced and truncated frames are EPROTO', async () => {
  const hdr = (len: number, kind: number, stream: number): Buffer => {
    const b = Buffer.alloc(HEADER_BYTES);
    b.writeUInt32BE(len, 0);
    b[4] = kind;
    b.writeUInt32BE(stream, 5);
    return b;
  };
  const ok = encodeFrame(FrameKind.END, 1);
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.concat([ok, hdr(MAX_DATA_PAYLOAD + 1, FrameKind.DATA, 1)]), /DATA frame declares 1048577 bytes, more than the 1048576 allowed/],
    [Buffer.concat([ok, hdr(MAX_JSON_PAYLOAD + 1, FrameKind.JSON, 0)]), new RegExp(`JSON frame declares ${MAX_JSON_PAYLOAD + 1} bytes`)],
    [Buffer.concat([ok, hdr(1, FrameKind.END, 1)]), /END frame declares 1 bytes/],
    [Buffer.concat([ok, hdr(0, 9, 1)]), /unknown kind 9/],
    [Buffer.concat([ok, hdr(2, FrameKind.JSON, 3)]), /JSON frame on stream 3/],
    [Buffer.concat([ok, hdr(2, FrameKind.DATA, 0)]), /DATA frame on stream 0/],
    [Buffer.concat([ok, hdr(10, FrameKind.DATA, 1), Buffer.alloc(3)]), /ended in the middle of a frame/],
  ];
  for (const [bytes, re] of cases) {
    const { error } = await decodeAll(bytes, 5);
    assert.ok(isTsmError(error, 'EPROTO'), String(error));
    assert.match(error.message, re);
    assert.ok(error.fix);
  }
  // a chatty login shell before the first frame
  const { error } = await decodeAll(Buffer.from('Welcome to Ubuntu 22.04\n'), 64);
  assert.ok(isTsmError(error, 'EPROTO'));
  assert.match(error.message, /not tsmigrate frames .*first bytes "Welcome t"/);
  assert.match(error.fix ?? '', /bashrc/);
});

test('decoder: passes DATA on as it arrives, without copying; holds at most one partial other frame', async () => {
  const d = new FrameDecoder();
  const got: Frame[] = [];
  d.on('data', (f: Frame) => got.push(f));
  const f = encodeFrame(FrameKind.DATA, 1, Buffer.alloc(1000, 7));
  const input = Buffer.concat([f, f, f.subarray(0, 500)]);
  d.write(input);
  await new Promise((r) => setImmediate(r));
  assert.equal(d.bufferedBytes, 0, 'the partial DATA payload was passed on');
  assert.equal(d.frameCount, 2);
  assert.deepEqual(got.map((g) => g.payload.length), [1000, 1000, 500 - HEADER_BYTES]);
  assert.ok(got.every((g) => g.payload.buffer === input.buffer), 'slices of the input, not copies');
  const j = encodeFrame(FrameKind.JSON, 0, Buffer.from('{"a":1}'));
  d.write(Buffer.concat([f.subarray(500), j.subarray(0, 12)]));
  await new Promise((r) => setImmediate(r));
  assert.equal(d.bufferedBytes, 12 - HEADER_BYTES, 'the partial JSON payload (its header is parsed)');
  assert.equal(d.frameCount, 3);
  assert.equal(Buffer.concat(got.map((g) => g.payload)).length, 3000);
});

test('encoder refuses what the decoder would refuse', () => {
  assert.throws(() => encodeHeader(FrameKind.DATA, 1, MAX_DATA_PAYLOAD + 1), (e: unknown) => isTsmError(e, 'EPROTO'));
  assert.throws(() => encodeHeader(FrameKind.JSON, 1, 1), (e: unknown) => isTsmError(e, 'EPROTO'));
  assert.throws(() => jsonPayload({ big: 'x'.repeat(MAX_JSON_PAYLOAD) }, 'putUpper call'), (e: unknown) => isTsmError(e, 'EPROTO') && /putUpper call is \d+ KiB/.test(e.message));
});

test('writer: splits big chunks, waits for drain, fails when the transport closes', async () => {
  const out = new PassThrough({ highWaterMark: 1024 });
  const w = new FrameWriter(out, () => lostError('test'));
  const got: Frame[] = [];
  const d = new FrameDecoder();
  d.on('data', (f: Frame) => got.push(f));
  const sending = w.data(5, Buffer.alloc(MAX_DATA_PAYLOAD * 2 + 10, 1));
  let settled = false;
  void sending.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(settled, false, 'waits for the reader');
  out.on('data', (c: Buffer) => d.write(c));
  await sending;
  assert.deepEqual(got.map((f) => f.payload.length), [MAX_DATA_PAYLOAD, MAX_DATA_PAYLOAD, 10]);
  out.pause();
  const stuck = w.data(5, Buffer.alloc(4096));
  out.destroy();
  await assert.rejects(stuck, (e: unknown) => e instanceof TsmError && e.code === 'EPEER');
  assert.throws(() => w.frame(FrameKind.END, 5), (e: unknown) => isTsmError(e, 'EPEER'));
});
