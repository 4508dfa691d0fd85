/**
 * The project's Avro schemas, read from `schemas/`: `<name>.avsc` is the current version and
 * `v<N>/<name>.avsc` the older ones, so a consumer of any age decodes from the `.avsc` files alone
 * and the daemon reads messages written with any version.
 *
 * Timestamps (`timestamp-millis`) and ids (`uuid`) stay plain numbers and strings in JS: no logical
 * type classes are registered, so avsc reads the underlying long/string. `DendriteAlert.raisedAt`
 * is epoch milliseconds already, and the JSON lines sink must carry the same value as Avro.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { ConfigError } from '../errors.ts';
import {
  type AvroSchemaFamily,
  type AvroSchemaSource,
  createAvroSchemaFamily,
} from './avro-schema-family.ts';

/** The schema files, by base name. */
export const AVRO_SCHEMA_NAMES = ['dendrite-alert', 'slice', 'scan-event'] as const;
export type AvroSchemaName = (typeof AVRO_SCHEMA_NAMES)[number];

/** Every schema family, by file base name. */
export type AvroSchemas = Readonly<Record<AvroSchemaName, AvroSchemaFamily>>;

/** `schemas/` at the package root, from `src/codecs/` and from `dist/codecs/` alike. */
export const DEFAULT_SCHEMAS_DIR = fileURLToPath(new URL('../../schemas/', import.meta.url));

/**
 * How the codecs parse schemas. `wrapUnions: 'never'` makes a union that avsc could not map to
 * plain JS values (two branches of one JS kind) fail at load instead of decoding to wrapped objects.
 * Frozen, so pass a copy: avsc stores its name registry in the options object it is given, and two
 * versions of one record sharing a registry would clash.
 */
export const AVRO_TYPE_OPTIONS = Object.freeze({ wrapUnions: 'never' } as const);

const loaded = new Map<string, AvroSchemas>();

/** Read every schema family from `dir` (once per directory; later calls share the result). */
export function loadAvroSchemas(dir: string = DEFAULT_SCHEMAS_DIR): AvroSchemas {
  const cached = loaded.get(dir);
  if (cached) return cached;
  const older = olderVersionDirs(dir);
  const families = {} as Record<AvroSchemaName, AvroSchemaFamily>;
  for (const name of AVRO_SCHEMA_NAMES) {
    const sources: AvroSchemaSource[] = [];
    for (const { version, path } of older) {
      const file = join(path, `${name}.avsc`);
      if (existsSync(file)) sources.push({ version, path: file, type: readAvscFile(file) });
    }
    // Each schema counts its own versions: one that did not change keeps its number.
    const current = sources.reduce((max, v) => Math.max(max, v.version), 0) + 1;
    const file = join(dir, `${name}.avsc`);
    sources.push({ version: current, path: file, type: readAvscFile(file) });
    families[name] = createAvroSchemaFamily(sources);
  }
  const schemas = Object.freeze(families);
  loaded.set(dir, schemas);
  return schemas;
}

/** Parse one `.avsc` file as the codecs do; ConfigError naming the file when it is unreadable or invalid. */
export function readAvscFile(path: string): avro.Type {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read Avro schema ${path}`, { path }, { cause });
  }
  try {
    return avro.Type.forSchema(JSON.parse(text), { ...AVRO_TYPE_OPTIONS });
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new ConfigError(`invalid Avro schema ${path}: ${reason}`, { path }, { cause });
  }
}

function olderVersionDirs(dir: string): { version: number; path: string }[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (cause) {
    throw new ConfigError(`cannot read the Avro schema folder ${dir}`, { path: dir }, { cause });
  }
  return entries.flatMap((entry) => {
    const match = /^v([1-9][0-9]*)$/.exec(entry);
    return match ? [{ version: Number(match[1]), path: join(dir, entry) }] : [];
  });
}
