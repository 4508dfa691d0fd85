/**
 * Confluent Schema Registry wire format: byte 0, the 4-byte big-endian schema id the registry
 * assigned, then the Avro binary body. No registry client here: the caller registers or fetches
 * schemas and passes ids and writer schemas in.
 */
import type avro from 'avsc';
import { DecodeError, type ErrorContext } from '../errors.ts';
import { decodeAvroBody, encodeAvroBody } from './avro-body.ts';
import type { AvroResolver } from './avro-schema-family.ts';
import type { MessageLocation } from './avro-single-object.ts';

/** Marker byte plus schema id. */
export const CONFLUENT_HEADER_BYTES = 5;

// Resolvers are costly to build and a consumer meets few writer schemas: one per (reader, writer).
const resolvers = new WeakMap<avro.Type, WeakMap<avro.Type, AvroResolver | null>>();

/** `value` framed for a Schema Registry consumer: 0, the schema id (big-endian), the Avro body. */
export function encodeConfluentAvro(
  schemaId: number,
  type: avro.Type,
  value: unknown,
  context: ErrorContext = {},
): Buffer {
  checkSchemaId(schemaId);
  const body = encodeAvroBody(type, value, context);
  const out = Buffer.allocUnsafe(CONFLUENT_HEADER_BYTES + body.length);
  out[0] = 0;
  out.writeUInt32BE(schemaId, 1);
  body.copy(out, CONFLUENT_HEADER_BYTES);
  return out;
}

/**
 * Decode a Schema Registry framed message: its writer schema is `writers.get(id)`, read as `reader`.
 * DecodeError for another framing, an id not in `writers`, or a bad body.
 */
export function decodeConfluentAvro(
  message: Uint8Array,
  writers: ReadonlyMap<number, avro.Type>,
  reader: avro.Type,
  where: MessageLocation = {},
): { schemaId: number; value: unknown } {
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const ctx: ErrorContext = { stage: 'decode', ...where };
  if (buf.length === 0 || buf[0] !== 0) {
    const head =
      buf.length === 0
        ? 'empty message'
        : `starts with ${buf[0]!.toString(16).toUpperCase().padStart(2, '0')}`;
    throw new DecodeError(`not Confluent Schema Registry framing: ${head}; expected 00`, ctx);
  }
  if (buf.length < CONFLUENT_HEADER_BYTES) {
    throw new DecodeError(
      `truncated Confluent header: ${buf.length} bytes, the marker and schema id need ${CONFLUENT_HEADER_BYTES}`,
      ctx,
    );
  }
  const schemaId = buf.readUInt32BE(1);
  const writer = writers.get(schemaId);
  if (!writer) {
    const known = [...writers.keys()].join(', ') || 'none';
    throw new DecodeError(
      `unknown Schema Registry id ${schemaId} for ${reader.name ?? reader.typeName} (known ids: ${known})`,
      ctx,
    );
  }
  const value = decodeAvroBody(
    reader,
    buf.subarray(CONFLUENT_HEADER_BYTES),
    resolverFor(reader, writer),
    `${reader.name ?? reader.typeName} message (registry id ${schemaId})`,
    ctx,
  );
  return { schemaId, value };
}

function resolverFor(reader: avro.Type, writer: avro.Type): AvroResolver | undefined {
  let byWriter = resolvers.get(reader);
  if (!byWriter) {
    byWriter = new WeakMap();
    resolvers.set(reader, byWriter);
  }
  let resolver = byWriter.get(writer);
  if (resolver === undefined) {
    // Same canonical schema: avsc reads it directly, no resolution step needed.
    resolver = writer === reader || writer.equals(reader) ? null : reader.createResolver(writer);
    byWriter.set(writer, resolver);
  }
  return resolver ?? undefined;
}

function checkSchemaId(schemaId: number): void {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0xffffffff) {
    throw new RangeError(`a Schema Registry id is an integer from 0 to 2^32-1, got ${schemaId}`);
  }
}
