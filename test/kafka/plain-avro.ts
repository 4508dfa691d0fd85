/**
 * Decode a message the way any consumer outside this project would: the `.avsc` file read with fs,
 * a plain avsc type, the 10-byte single-object header (C3 01 + 8-byte fingerprint) skipped. No
 * project code in this path, so it checks the wire contract and not the codec against itself.
 */
import { readFileSync } from 'node:fs';
import avro from 'avsc';

const SCHEMAS = new URL('../../schemas/', import.meta.url);

/** A plain avsc type for `schemas/<name>.avsc`. */
export function plainType(name: 'dendrite-alert' | 'scan-event' | 'slice'): avro.Type {
  return avro.Type.forSchema(JSON.parse(readFileSync(new URL(`${name}.avsc`, SCHEMAS), 'utf8')));
}

/** The record in a single-object-encoded message. */
export function decodePlain(type: avro.Type, message: Buffer | null): Record<string, unknown> {
  if (message?.[0] !== 0xc3 || message[1] !== 0x01)
    throw new Error(`not a single-object message: ${message?.subarray(0, 2).toString('hex')}`);
  const fingerprint = crc64Avro(JSON.stringify(type.schema()));
  if (!message.subarray(2, 10).equals(fingerprint))
    throw new Error(
      `fingerprint ${message.subarray(2, 10).toString('hex')} is not ${fingerprint.toString('hex')}`,
    );
  return type.fromBuffer(message.subarray(10)) as Record<string, unknown>;
}

/** The Avro spec's CRC-64-AVRO (Rabin) fingerprint of a schema's canonical form, little-endian. */
function crc64Avro(canonical: string): Buffer {
  const EMPTY = 0xc15d213aa4d7a795n;
  const MASK = (1n << 64n) - 1n;
  const table: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
    table.push(fp & MASK);
  }
  let fp = EMPTY;
  for (const byte of Buffer.from(canonical, 'utf8')) {
    fp = ((fp >> 8n) ^ (table[Number((fp ^ BigInt(byte)) & 0xffn)] as bigint)) & MASK;
  }
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp);
  return out;
}
