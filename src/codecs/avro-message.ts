/**
 * One message of one of our schema families in whichever framing the deployment uses: single-object
 * encoding by default, Confluent Schema Registry framing when a registry id is configured.
 */
import type avro from 'avsc';
import type { ErrorContext } from '../errors.ts';
import { decodeConfluentAvro, encodeConfluentAvro } from './avro-confluent.ts';
import type { AvroSchemaFamily } from './avro-schema-family.ts';
import { decodeSingleObject, encodeSingleObject, type MessageLocation } from './avro-single-object.ts';

/** How to frame an encoded message. */
export interface EncodeAvroOptions {
  /** Frame for a Schema Registry under this id (the current schema's) instead of single-object. */
  confluentSchemaId?: number;
}

/** How to read a message. */
export interface DecodeAvroOptions {
  /** Topic, partition and offset the message came from, for errors. */
  where?: MessageLocation;
  /** Writer schemas by Schema Registry id; when set, messages starting with 00 are read with them. */
  confluentWriters?: ReadonlyMap<number, avro.Type>;
}

/** `value` as a message of `family`'s current schema. */
export function encodeAvroMessage(
  family: AvroSchemaFamily,
  value: unknown,
  options: EncodeAvroOptions = {},
  context: ErrorContext = {},
): Buffer {
  return options.confluentSchemaId === undefined
    ? encodeSingleObject(family.current, value, context)
    : encodeConfluentAvro(options.confluentSchemaId, family.current.type, value, context);
}

/** A message of `family`, framed either way, as the family's current schema. */
export function decodeAvroMessage(
  family: AvroSchemaFamily,
  message: Uint8Array,
  options: DecodeAvroOptions = {},
): unknown {
  const { where = {}, confluentWriters } = options;
  if (confluentWriters && message[0] === 0) {
    return decodeConfluentAvro(message, confluentWriters, family.current.type, where).value;
  }
  return decodeSingleObject(family, message, where);
}
