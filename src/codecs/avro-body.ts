/**
 * The Avro binary body shared by both framings (single-object and Confluent): values checked
 * against the schema before writing, and reads that must consume exactly the body.
 */
import { inspect } from 'node:util';
import type avro from 'avsc';
import { DecodeError, type ErrorContext, OutputError } from '../errors.ts';
import type { AvroResolver } from './avro-schema-family.ts';

/** Avro binary of `value`; OutputError naming each field that does not fit the schema. */
export function encodeAvroBody(type: avro.Type, value: unknown, context: ErrorContext = {}): Buffer {
  const problems: string[] = [];
  // avsc's toBuffer trusts its input: a float in an int field or a missing field would be written
  // as garbage or fail deep inside avsc, so check first and say which field is wrong.
  const valid = type.isValid(value, {
    errorHook: (path, val, t) => {
      problems.push(`${path.length ? path.join('.') : '(the record)'}: ${show(val)} is not ${describe(t)}`);
    },
  });
  if (!valid) {
    const shown =
      problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw new OutputError(`value does not fit Avro schema ${name(type)}: ${shown}`, {
      stage: 'encode',
      ...context,
    });
  }
  return type.toBuffer(value);
}

/**
 * Decode `body` with `reader` (through `resolver` when written with another schema), records as
 * plain objects. DecodeError when the bytes end early, go on past the record, or are not Avro.
 */
export function decodeAvroBody(
  reader: avro.Type,
  body: Buffer,
  resolver: AvroResolver | undefined,
  what: string,
  context: ErrorContext = {},
): unknown {
  const ctx: ErrorContext = { stage: 'decode', ...context };
  let result: { value: unknown; offset: number };
  try {
    result = reader.decode(body, 0, resolver);
  } catch (cause) {
    // A length or index read from garbage can send avsc's reads past the buffer's end.
    if (cause instanceof RangeError) throw truncated(what, body, ctx, cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new DecodeError(`${what}: corrupt Avro body: ${reason}`, ctx, { cause });
  }
  if (result.offset < 0) throw truncated(what, body, ctx);
  if (result.offset < body.length) {
    const extra = body.length - result.offset;
    throw new DecodeError(
      `${what}: ${extra} trailing byte${extra === 1 ? '' : 's'} after the record (body is ${body.length} bytes, the record ends at ${result.offset})`,
      ctx,
    );
  }
  return plain(result.value);
}

/**
 * avsc returns records as instances of generated classes; plain objects clone, compare and
 * serialize like the objects that were encoded. Bytes stay Buffers (views into the message).
 */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = plain(v);
  return out;
}

function truncated(what: string, body: Buffer, ctx: ErrorContext, cause?: unknown): DecodeError {
  return new DecodeError(
    `${what}: truncated Avro body: the ${body.length} byte${body.length === 1 ? '' : 's'} end before the record does`,
    ctx,
    cause === undefined ? {} : { cause },
  );
}

function name(type: avro.Type): string {
  return type.name ?? type.typeName;
}

function describe(type: avro.Type): string {
  const schema = type.schema();
  return `a valid ${typeof schema === 'string' ? schema : (type.name ?? JSON.stringify(schema))}`;
}

function show(value: unknown): string {
  const text = inspect(value, { depth: 0, breakLength: Number.POSITIVE_INFINITY, maxArrayLength: 4 });
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
