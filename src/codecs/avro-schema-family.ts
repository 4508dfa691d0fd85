/**
 * A schema and its history: every version a reader may meet on a topic, indexed by the fingerprint
 * single-object encoding carries, each with the avsc resolver that reads its data as the current one.
 */
import type avro from 'avsc';
import { ConfigError } from '../errors.ts';
import { avroFingerprint, parsingCanonicalForm } from './avro-fingerprint.ts';

/** avsc's resolver (its class is not exported by the typings). */
export type AvroResolver = ReturnType<avro.Type['createResolver']>;

/** One version of a schema. */
export interface AvroSchemaVersion {
  /** 1 for the oldest; the current one has the highest. */
  readonly version: number;
  /** The .avsc file it was read from, when it came from one. */
  readonly path: string | undefined;
  readonly type: avro.Type;
  readonly canonicalForm: string;
  /** CRC-64-AVRO of the canonical form, 8 bytes little-endian, as single-object encoding writes it. */
  readonly fingerprint: Buffer;
  /** Reads data written with this version as the current version; undefined for the current one. */
  readonly resolver: AvroResolver | undefined;
}

/** Every known version of one record type; data of any of them decodes as `current`. */
export interface AvroSchemaFamily {
  /** Full name of the current record, e.g. `io.xctsentinel.DendriteAlert`. */
  readonly name: string;
  readonly current: AvroSchemaVersion;
  /** Oldest first; the last one is `current`. */
  readonly versions: readonly AvroSchemaVersion[];
  /** The version with this 8-byte fingerprint, if known. */
  byFingerprint(fingerprint: Uint8Array): AvroSchemaVersion | undefined;
}

/** What `createAvroSchemaFamily` needs of each version. */
export interface AvroSchemaSource {
  version: number;
  type: avro.Type;
  path?: string;
}

/**
 * Index versions by fingerprint and build their resolvers once, so that decoding a message costs a
 * map lookup. Throws ConfigError when an older version cannot be read by the current one: better at
 * start-up than on the first old message.
 */
export function createAvroSchemaFamily(sources: readonly AvroSchemaSource[]): AvroSchemaFamily {
  if (sources.length === 0) throw new ConfigError('a schema family needs at least one version');
  const sorted = [...sources].sort((a, b) => a.version - b.version);
  const latest = sorted[sorted.length - 1]!;
  const versions = sorted.map((source): AvroSchemaVersion => {
    let resolver: AvroResolver | undefined;
    if (source !== latest) {
      try {
        resolver = latest.type.createResolver(source.type);
      } catch (cause) {
        throw new ConfigError(
          `${label(source)} cannot be read by ${label(latest)}: ${cause instanceof Error ? cause.message : String(cause)}`,
          { path: source.path },
          { cause },
        );
      }
    }
    return {
      version: source.version,
      path: source.path,
      type: source.type,
      canonicalForm: parsingCanonicalForm(source.type),
      fingerprint: avroFingerprint(source.type),
      resolver,
    };
  });
  const current = versions[versions.length - 1]!;
  const index = new Map<string, AvroSchemaVersion>();
  // Oldest first, so an unchanged copy of the current schema kept as an old version maps to current.
  for (const v of versions) index.set(v.fingerprint.toString('hex'), v);
  return {
    name: current.type.name ?? current.type.typeName,
    current,
    versions,
    byFingerprint(fingerprint) {
      const key = Buffer.from(fingerprint.buffer, fingerprint.byteOffset, fingerprint.byteLength);
      return index.get(key.toString('hex'));
    },
  };
}

function label(source: AvroSchemaSource): string {
  return `${source.type.name ?? source.type.typeName} v${source.version}${source.path ? ` (${source.path})` : ''}`;
}
