/**
 * Avro single-object encoding, as the Avro specification defines it: the marker bytes C3 01, the
 * 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form, then the
 * Avro binary body. A consumer needs only the `.avsc` files to find the writer schema and decode.
 */
import { DecodeError, type ErrorContext } from '../errors.ts';
import { decodeAvroBody, encodeAvroBody } from './avro-body.ts';
import type { AvroSchemaFamily, AvroSchemaVersion } from './avro-schema-family.ts';

/** The two marker bytes every single-object message starts with. */
export const SINGLE_OBJECT_MAGIC: readonly number[] = Object.freeze([0xc3, 0x01]);
/** Marker plus fingerprint. */
export const SINGLE_OBJECT_HEADER_BYTES = 10;

/** Where a message came from, for errors; whatever of it the caller knows. */
export type MessageLocation = Pick<ErrorContext, 'topic' | 'partition' | 'offset'>;

/** `value` in single-object encoding under `version` (normally a family's `current`). */
export function encodeSingleObject(
  version: AvroSchemaVersion,
  value: unknown,
  context: ErrorContext = {},
): Buffer {
  const body = encodeAvroBody(version.type, value, context);
  const out = Buffer.allocUnsafe(SINGLE_OBJECT_HEADER_BYTES + body.length);
  out[0] = 0xc3;
  out[1] = 0x01;
  version.fingerprint.copy(out, 2);
  body.copy(out, SINGLE_OBJECT_HEADER_BYTES);
  return out;
}

/**
 * Decode a single-object message written with any known version of `family`, as its current
 * version (older data gains the current fields' defaults). DecodeError saying why otherwise.
 */
export function decodeSingleObject(
  family: AvroSchemaFamily,
  message: Uint8Array,
  where: MessageLocation = {},
): unknown {
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const ctx: ErrorContext = { stage: 'decode', ...where };
  const marked = buf.length >= 1 && buf[0] === 0xc3 && (buf.length === 1 || buf[1] === 0x01);
  if (!marked) {
    throw new DecodeError(`not Avro single-object encoding: ${sniff(buf)}; expected C3 01`, ctx);
  }
  if (buf.length < SINGLE_OBJECT_HEADER_BYTES) {
    throw new DecodeError(
      `truncated single-object header: ${buf.length} bytes, the marker and fingerprint need ${SINGLE_OBJECT_HEADER_BYTES}`,
      ctx,
    );
  }
  const fingerprint = buf.subarray(2, SINGLE_OBJECT_HEADER_BYTES);
  const writer = family.byFingerprint(fingerprint);
  if (!writer) {
    const known = family.versions.map((v) => `v${v.version} ${fingerprintHex(v.fingerprint)}`).join(', ');
    throw new DecodeError(
      `unknown schema fingerprint ${fingerprintHex(fingerprint)}: not a known version of ${family.name} (known: ${known})`,
      ctx,
    );
  }
  return decodeAvroBody(
    family.current.type,
    buf.subarray(SINGLE_OBJECT_HEADER_BYTES),
    writer.resolver,
    `${family.name} v${writer.version} message`,
    ctx,
  );
}

/** A fingerprint as the 64-bit number it is (`0x…`), the way Avro tools print it. */
export function fingerprintHex(fingerprint: Uint8Array): string {
  return `0x${Buffer.from(fingerprint).reverse().toString('hex')}`;
}

/** What the first bytes of a message that is not ours look like, for the error message. */
function sniff(buf: Buffer): string {
  if (buf.length === 0) return 'empty message';
  const head = [...buf.subarray(0, 4)].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
  let guess = '';
  if (buf[0] === 0x00 && buf.length >= 5) {
    guess = `, looks like Confluent Schema Registry framing (schema id ${buf.readUInt32BE(1)})`;
  } else if (buf[0] === 0x7b || buf[0] === 0x5b) {
    guess = ', looks like JSON text';
  } else if (buf.subarray(0, 4).equals(Buffer.from('Obj\x01', 'latin1'))) {
    guess = ', looks like an Avro container file';
  }
  return `starts with ${head}${guess}`;
}
