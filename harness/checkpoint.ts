import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { writeFileAtomic } from './store.js';
import type { TrainState } from './run-context.js';

/**
 * Checkpoint files: a compact binary container for a run's TrainState.
 *
 *   8 bytes  magic "SBCKPT1\n"
 *   4 bytes  header length H (uint32 LE), 4 bytes reserved
 *   H bytes  header: UTF-8 JSON { format, run_id, created, state } where every typed array of
 *            the state is replaced by { "$blob": i }, and blobs lists [type, byteOffset, length]
 *   ...      the blobs' bytes, each 8-byte aligned, little-endian
 *   32 bytes SHA-256 of everything before it
 *
 * Written atomically (temp file + fsync + rename), so a reader sees a complete old or new file.
 */

const MAGIC = Buffer.from('SBCKPT1\n', 'latin1');
export const CHECKPOINT_FORMAT = 1;

type Typed = Float32Array | Float64Array | Int32Array | Uint8Array;
const kinds: Record<string, { new (b: ArrayBuffer): Typed; BYTES_PER_ELEMENT: number }> = {
  f32: Float32Array, f64: Float64Array, i32: Int32Array, u8: Uint8Array,
};
function kindOf(v: unknown): string | null {
  if (v instanceof Float32Array) return 'f32';
  if (v instanceof Float64Array) return 'f64';
  if (v instanceof Int32Array) return 'i32';
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return 'u8';
  return null;
}

export class CheckpointError extends Error {
  constructor(file: string, why: string) {
    super(`${file}: unusable checkpoint (${why})`);
    this.name = 'CheckpointError';
  }
}

/** Long number lists (step times) travel as Float64Array blobs rather than JSON text. */
function packCounters(s: TrainState): unknown {
  return { ...s, counters: { ...s.counters, stepTimes: Float64Array.from(s.counters.stepTimes), updateTimes: Float64Array.from(s.counters.updateTimes) } };
}

export function encodeCheckpoint(runId: string, state: TrainState): Buffer {
  const blobs: Typed[] = [];
  const header = JSON.stringify({
    format: CHECKPOINT_FORMAT,
    run_id: runId,
    created: new Date().toISOString(),
    state: packCounters(state),
  }, (_k, v) => {
    if (kindOf(v)) { blobs.push(v as Typed); return { $blob: blobs.length - 1 }; }
    return v;
  });
  const align = (n: number) => (n + 7) & ~7;
  const headerBytes = Buffer.from(header, 'utf8');
  // the blob table goes after the JSON, as a second small JSON, so offsets need not be known in advance
  let offset = 0;
  const table: [string, number, number][] = blobs.map((b) => {
    const entry: [string, number, number] = [kindOf(b)!, offset, b.length];
    offset = align(offset + b.byteLength);
    return entry;
  });
  const tableBytes = Buffer.from(JSON.stringify(table), 'utf8');
  const head = 16 + align(headerBytes.length) + 8 + align(tableBytes.length);
  const total = head + offset + 32;
  const out = Buffer.alloc(total);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(headerBytes.length, 8);
  headerBytes.copy(out, 16);
  const tablePos = 16 + align(headerBytes.length);
  out.writeUInt32LE(tableBytes.length, tablePos);
  tableBytes.copy(out, tablePos + 8);
  blobs.forEach((b, i) => {
    Buffer.from(b.buffer, b.byteOffset, b.byteLength).copy(out, head + table[i][1]);
  });
  createHash('sha256').update(out.subarray(0, total - 32)).digest().copy(out, total - 32);
  return out;
}

export function decodeCheckpoint(buf: Buffer, file = 'checkpoint'): { runId: string; created: string; state: TrainState } {
  const align = (n: number) => (n + 7) & ~7;
  if (buf.length < 56 || !buf.subarray(0, 8).equals(MAGIC)) throw new CheckpointError(file, 'not a sparsebench checkpoint');
  const digest = createHash('sha256').update(buf.subarray(0, buf.length - 32)).digest();
  if (!digest.equals(buf.subarray(buf.length - 32))) throw new CheckpointError(file, 'checksum mismatch');
  const headerLen = buf.readUInt32LE(8);
  const tablePos = 16 + align(headerLen);
  const tableLen = buf.readUInt32LE(tablePos);
  const head = tablePos + 8 + align(tableLen);
  const table = JSON.parse(buf.subarray(tablePos + 8, tablePos + 8 + tableLen).toString('utf8')) as [string, number, number][];
  const blobs = table.map(([kind, off, length]) => {
    const K = kinds[kind];
    if (!K) throw new CheckpointError(file, `unknown array type ${kind}`);
    const bytes = length * K.BYTES_PER_ELEMENT;
    const copy = new ArrayBuffer(bytes);
    new Uint8Array(copy).set(buf.subarray(head + off, head + off + bytes));
    return new K(copy);
  });
  const parsed = JSON.parse(buf.subarray(16, 16 + headerLen).toString('utf8'), (_k, v) => {
    if (v && typeof v === 'object' && typeof v.$blob === 'number') return blobs[v.$blob];
    return v;
  }) as { format: number; run_id: string; created: string; state: TrainState };
  if (parsed.format !== CHECKPOINT_FORMAT) throw new CheckpointError(file, `format ${parsed.format}, expected ${CHECKPOINT_FORMAT}`);
  const s = parsed.state;
  s.counters.stepTimes = Array.from(s.counters.stepTimes as unknown as Float64Array);
  s.counters.updateTimes = Array.from(s.counters.updateTimes as unknown as Float64Array);
  return { runId: parsed.run_id, created: parsed.created, state: s as TrainState };
}

/** Writes a checkpoint atomically and durably. */
export function writeCheckpoint(file: string, runId: string, state: TrainState): void {
  writeFileAtomic(file, encodeCheckpoint(runId, state), true);
}

/** The checkpoint of run `runId` at `file`; null when there is none. Throws CheckpointError when it is unusable. */
export function readCheckpoint(file: string, runId: string): TrainState | null {
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const c = decodeCheckpoint(buf, file);
  if (c.runId !== runId) throw new CheckpointError(file, `belongs to run ${c.runId}`);
  return c.state;
}

/** Where a checkpoint stands (for `status`), read from its header only. */
export function checkpointSummary(file: string): { step: number; epoch: number; created: string } | null {
  let fd: number | null = null;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(16);
    if (readSync(fd, head, 0, 16, 0) < 16 || !head.subarray(0, 8).equals(MAGIC)) return null;
    const header = Buffer.alloc(head.readUInt32LE(8));
    readSync(fd, header, 0, header.length, 16);
    const h = JSON.parse(header.toString('utf8')) as { created: string; state: { step: number; epoch: number } };
    return { step: h.state.step, epoch: h.state.epoch, created: h.created };
  } catch {
    return null;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
