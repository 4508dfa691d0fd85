/**
 * What any Avro consumer relies on: the fingerprint in every message is CRC-64-AVRO of the Parsing
 * Canonical Form, computed here without project code (canonical form and CRC written from the
 * spec's text, bit by bit), checked against the Avro project's own test vectors, and every message
 * body decodes with a fresh avsc Type built from nothing but the `.avsc` file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import t, { type Test } from 'tap';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { encodeAlert } from '../../src/codecs/avro-alert.ts';
import { crc64Avro, parsingCanonicalForm } from '../../src/codecs/avro-fingerprint.ts';
import { encodeScanEvent, type ScanEvent } from '../../src/codecs/avro-scan-event.ts';
import { AVRO_SCHEMA_NAMES, DEFAULT_SCHEMAS_DIR, loadAvroSchemas } from '../../src/codecs/avro-schemas.ts';
import { encodeSlice } from '../../src/codecs/avro-slice.ts';

// --- independent reference implementations, from the spec's text ---------------------------------

/** CRC-64-AVRO bit by bit (the spec's table is this loop unrolled per byte). */
function referenceCrc64(text: string): bigint {
  const EMPTY = 0xc15d213aa4d7a795n;
  let fp = EMPTY;
  for (const byte of Buffer.from(text, 'utf8')) {
    fp ^= BigInt(byte);
    for (let i = 0; i < 8; i++) fp = (fp >> 1n) ^ (fp & 1n ? EMPTY : 0n);
  }
  return fp;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

/** Parsing Canonical Form per the spec's rules: PRIMITIVES, FULLNAMES, STRIP, ORDER, no whitespace. */
function referenceCanonical(schema: unknown, namespace = '', seen = new Set<string>()): string {
  const j = JSON.stringify;
  const fullName = (name: string, ns: string) => (name.includes('.') || !ns ? name : `${ns}.${name}`);
  if (typeof schema === 'string') return j(PRIMITIVES.has(schema) ? schema : fullName(schema, namespace));
  if (Array.isArray(schema))
    return `[${schema.map((s) => referenceCanonical(s, namespace, seen)).join(',')}]`;
  const o = schema as Record<string, unknown>;
  const type = o['type'];
  if (typeof type !== 'string') return referenceCanonical(type, namespace, seen);
  if (PRIMITIVES.has(type)) return j(type);
  if (type === 'array') return `{"type":"array","items":${referenceCanonical(o['items'], namespace, seen)}}`;
  if (type === 'map') return `{"type":"map","values":${referenceCanonical(o['values'], namespace, seen)}}`;
  if (type === 'record' || type === 'error' || type === 'enum' || type === 'fixed') {
    const name = fullName(o['name'] as string, (o['namespace'] as string | undefined) ?? namespace);
    if (seen.has(name)) return j(name);
    seen.add(name);
    const inner = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
    let rest: string;
    if (type === 'enum') rest = `"symbols":${j(o['symbols'])}`;
    else if (type === 'fixed') rest = `"size":${j(o['size'])}`;
    else {
      const fields = o['fields'] as { name: string; type: unknown }[];
      rest = `"fields":[${fields.map((f) => `{"name":${j(f.name)},"type":${referenceCanonical(f.type, inner, seen)}}`).join(',')}]`;
    }
    return `{"name":${j(name)},"type":${j(type)},${rest}}`;
  }
  return j(fullName(type, namespace)); // {"type": "SomeNamedType"}
}

/** The 8 bytes a single-object header carries for this schema JSON. */
function referenceFingerprint(schemaJson: unknown): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(referenceCrc64(referenceCanonical(schemaJson)));
  return out;
}

// --- the Avro project's vectors (share/test/data/schema-tests.txt): input, canonical, fingerprint --

const SPEC_VECTORS: [string, string, bigint][] = [
  ['"null"', '"null"', 7195948357588979594n],
  ['{"type":"null"}', '"null"', 7195948357588979594n],
  ['"boolean"', '"boolean"', -6970731678124411036n],
  ['"int"', '"int"', 8247732601305521295n],
  ['{"type":"int"}', '"int"', 8247732601305521295n],
  ['"long"', '"long"', -3434872931120570953n],
  ['"float"', '"float"', 5583340709985441680n],
  ['"double"', '"double"', -8181574048448539266n],
  ['"bytes"', '"bytes"', 5746618253357095269n],
  ['"string"', '"string"', -8142146995180207161n],
  ['[  ]', '[]', -1241056759729112623n],
  ['[ "int"  ]', '["int"]', -5232228896498058493n],
  ['[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090n],
  [
    '{"fields":[], "type":"record", "name":"foo"}',
    '{"name":"foo","type":"record","fields":[]}',
    -4824392279771201922n,
  ],
  [
    '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
    '{"name":"x.y.foo","type":"record","fields":[]}',
    5916914534497305771n,
  ],
  [
    '{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
    '{"name":"a.b.foo","type":"record","fields":[]}',
    -4616218487480524110n,
  ],
  [
    '{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}',
    '{"name":"foo","type":"record","fields":[]}',
    -4824392279771201922n,
  ],
  [
    '{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
    '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
    7843277075252814651n,
  ],
  [
    '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true}, {"order":"descending","name":"f2","doc":"Hello","type":"int"}],"type":"record", "name":"foo"}',
    '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
    -4860222112080293046n,
  ],
  [
    '{"type":"enum", "name":"foo", "symbols":["A1"]}',
    '{"name":"foo","type":"enum","symbols":["A1"]}',
    -6342190197741309591n,
  ],
  [
    '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
    '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
    -4448647247586288245n,
  ],
  [
    '{"name":"foo","type":"fixed","size":15}',
    '{"name":"foo","type":"fixed","size":15}',
    1756455273707447556n,
  ],
  [
    '{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
    '{"name":"x.y.z.foo","type":"fixed","size":32}',
    -3064184465700546786n,
  ],
  ['{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059n],
  ['{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990n],
  [
    '{"name":"PigValue","type":"record", "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
    '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    -1759257747318642341n,
  ],
];

t.test('the reference CRC and canonical form reproduce the Avro project vectors', async (t) => {
  for (const [input, canonical, signed] of SPEC_VECTORS) {
    t.equal(referenceCanonical(JSON.parse(input)), canonical, `reference canonical form of ${input}`);
    t.equal(referenceCrc64(canonical), BigInt.asUintN(64, signed), `reference CRC of ${canonical}`);
  }
});

t.test('crc64Avro and avsc-derived canonical forms match the Avro project vectors', async (t) => {
  for (const [input, canonical, signed] of SPEC_VECTORS) {
    t.equal(crc64Avro(Buffer.from(canonical)), BigInt.asUintN(64, signed), `fingerprint of ${canonical}`);
    // avsc refuses an empty union, which the spec's vector allows; everything else it must parse.
    if (canonical === '[]') continue;
    t.equal(
      parsingCanonicalForm(avro.Type.forSchema(JSON.parse(input))),
      canonical,
      `canonical form of ${input}`,
    );
  }
  t.equal(
    crc64Avro(Buffer.from('"int"')).toString(16),
    '7275d51a3f395c8f',
    'spec: "int" is 0x7275d51a3f395c8f',
  );
});

t.test('every schema version is fingerprinted as the reference computes it', async (t) => {
  const schemas = loadAvroSchemas();
  for (const name of AVRO_SCHEMA_NAMES) {
    const family = schemas[name];
    t.ok(family.versions.length >= 2, `${name}: the current version and at least one older one`);
    for (const v of family.versions) {
      const json: unknown = JSON.parse(readFileSync(v.path!, 'utf8'));
      t.equal(v.canonicalForm, referenceCanonical(json), `${name} v${v.version}: canonical form`);
      t.same([...v.fingerprint], [...referenceFingerprint(json)], `${name} v${v.version}: fingerprint`);
    }
    const prints = new Set(family.versions.map((v) => v.fingerprint.toString('hex')));
    t.equal(prints.size, family.versions.length, `${name}: every version differs`);
  }
});

// --- messages, read as a consumer with only the .avsc would ---------------------------------------

const ALERT: DendriteAlert = {
  alertId: '0f8e7d6c-5b4a-8392-a1b0-c9d8e7f6a5b4',
  scanId: 'cell-7',
  kind: 'dendrite',
  severity: 'critical',
  raisedAt: 1_718_000_000_000,
  scanProgress: 0.25,
  sliceRange: { first: 10, last: 12 },
  bbox: {
    voxels: { zMin: 10, zMax: 12, yMin: 3, yMax: 9, xMin: 4, xMax: 6 },
    um: { zMin: 6.5, zMax: 8.45, yMin: 1.95, yMax: 6.5, xMin: 2.6, xMax: 4.55 },
  },
  voxelCount: 31,
  volumeUm3: 8.51,
  heightUm: 4.2,
  heightFraction: 0.35,
  confidence: 0.88,
  model: { name: 'tnet-phantom', version: '3', sha256: 'c'.repeat(64), provider: 'cuda' },
  zarr: {
    path: 'out/cell-7.zarr',
    labels: 'labels/dendrite/0',
    probabilities: 'probabilities/0',
    region: { z: [10, 13], y: [3, 10], x: [4, 7] },
  },
  componentId: 2,
  electrode: 'bottom',
  summary: null,
};

const EVENT: ScanEvent = {
  scanId: 'cell-7',
  kind: 'progress',
  at: 1_718_000_000_500,
  acquiredSlices: 40,
  expectedSlices: 160,
  sampleId: null,
  voxelSizeUm: 0.65,
  scanProgress: 0.25,
  width: 256,
  height: 128,
  endReason: null,
  summary: null,
  summaryAlertId: null,
  failure: null,
};

/** Check the header against the reference, decode the body with a Type built from the file alone. */
function readAsForeignConsumer(t: Test, file: string, message: Buffer): unknown {
  const json: unknown = JSON.parse(readFileSync(join(DEFAULT_SCHEMAS_DIR, file), 'utf8'));
  t.same([...message.subarray(0, 2)], [0xc3, 0x01], `${file}: marker C3 01`);
  t.same([...message.subarray(2, 10)], [...referenceFingerprint(json)], `${file}: reference fingerprint`);
  return avro.Type.forSchema(json as avro.Schema).fromBuffer(message.subarray(10));
}

t.test('an alert decodes from the .avsc alone', async (t) => {
  const value = readAsForeignConsumer(t, 'dendrite-alert.avsc', encodeAlert(ALERT));
  t.same(JSON.parse(JSON.stringify(value)), ALERT, 'every field, as the JSON lines sink writes it');
  const summary = readAsForeignConsumer(
    t,
    'dendrite-alert.avsc',
    encodeAlert({ ...ALERT, kind: 'scan-summary', componentId: null, electrode: null, bbox: null }),
  );
  t.match(summary, { kind: 'scan_summary', bbox: null }, 'Avro symbol scan_summary for kind scan-summary');
});

t.test('a slice decodes from the .avsc alone, pixels little-endian', async (t) => {
  const data = Uint16Array.from([0x0102, 0x0304, 0xfffe]);
  const message = encodeSlice({
    scanId: 'cell-7',
    z: 3,
    expectedSlices: null,
    voxelSizeUm: null,
    acquiredAt: 1_718_000_000_000,
    pixels: { width: 3, height: 1, dtype: 'uint16', data },
  });
  const value = readAsForeignConsumer(t, 'slice.avsc', message);
  t.match(value, { scanId: 'cell-7', z: 3, width: 3, height: 1, dtype: 'uint16', endianness: 'little' });
  t.same([...(value as { pixels: Buffer }).pixels], [2, 1, 4, 3, 0xfe, 0xff]);
});

t.test('a scan event decodes from the .avsc alone', async (t) => {
  const value = readAsForeignConsumer(t, 'scan-event.avsc', encodeScanEvent(EVENT));
  t.same(JSON.parse(JSON.stringify(value)), EVENT);
});
