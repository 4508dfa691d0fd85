import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  AVRO_SCHEMA_NAMES,
  DEFAULT_SCHEMAS_DIR,
  loadAvroSchemas,
  readAvscFile,
} from '../../src/codecs/avro-schemas.ts';
import { fingerprintHex } from '../../src/codecs/avro-single-object.ts';

type Json = Record<string, unknown>;

/** Every named type and every field in a schema, for the hygiene checks. */
function walk(schema: unknown, visit: (node: Json, kind: 'type' | 'field') => void): void {
  if (Array.isArray(schema)) {
    for (const s of schema) walk(s, visit);
    return;
  }
  if (schema === null || typeof schema !== 'object') return;
  const node = schema as Json;
  visit(node, 'type');
  if (node['type'] === 'record') {
    for (const field of node['fields'] as Json[]) {
      visit(field, 'field');
      walk(field['type'], visit);
    }
  }
  walk(node['items'], visit);
  walk(node['values'], visit);
  if (typeof node['type'] === 'object') walk(node['type'], visit);
}

/** A schema file as written: avsc's re-export drops logical types it has no class for. */
function file(path: string): Json {
  return JSON.parse(readFileSync(path, 'utf8')) as Json;
}

t.test('the schema files follow the house rules', async (t) => {
  const schemas = loadAvroSchemas();
  for (const name of AVRO_SCHEMA_NAMES) {
    for (const version of schemas[name].versions) {
      const label = `${name} v${version.version}`;
      const top = file(version.path!);
      t.match(
        top,
        { type: 'record', namespace: 'io.xctsentinel', doc: /\S/ },
        `${label}: a documented io.xctsentinel record`,
      );
      walk(top, (node, kind) => {
        if (kind === 'field') {
          t.match(node['doc'], /\S/, `${label}: field ${node['name']} has a doc`);
          const type = node['type'];
          if (Array.isArray(type) && type.includes('null')) {
            t.equal(type[0], 'null', `${label}: ${node['name']}: null first`);
            t.ok('default' in node && node['default'] === null, `${label}: ${node['name']}: default null`);
          }
        } else if (['record', 'enum', 'fixed'].includes(node['type'] as string)) {
          // Nested types inherit io.xctsentinel; a dotted name or another namespace would leave it.
          t.match(node['name'], /^[A-Z][A-Za-z0-9]*$/, `${label}: ${node['name']} inherits the namespace`);
          t.ok(node === top || !('namespace' in node), `${label}: ${node['name']} sets no other namespace`);
          t.match(node['doc'], /\S/, `${label}: ${node['name']} has a doc`);
        }
      });
    }
  }
});

t.test('the current versions use logical types and enums where the contract says so', async (t) => {
  const schemas = loadAvroSchemas();
  const text = (name: (typeof AVRO_SCHEMA_NAMES)[number]) =>
    JSON.stringify(file(schemas[name].current.path!));
  t.match(text('dendrite-alert'), /"name":"alertId","type":\{"type":"string","logicalType":"uuid"\}/);
  t.match(
    text('dendrite-alert'),
    /"name":"raisedAt","type":\{"type":"long","logicalType":"timestamp-millis"\}/,
  );
  t.match(text('dendrite-alert'), /"name":"Severity",.*"symbols":\["info","warning","critical"\]/);
  t.match(text('dendrite-alert'), /"name":"AlertKind",.*"symbols":\["dendrite","scan_summary"\]/);
  t.match(text('slice'), /"name":"acquiredAt","type":\{"type":"long","logicalType":"timestamp-millis"\}/);
  t.match(text('slice'), /"name":"Dtype",.*"symbols":\["uint8",/);
  t.match(text('scan-event'), /"name":"at","type":\{"type":"long","logicalType":"timestamp-millis"\}/);
  t.match(
    text('scan-event'),
    /"name":"summaryAlertId","type":\["null",\{"type":"string","logicalType":"uuid"\}\]/,
  );
  const v1 = file(schemas['dendrite-alert'].versions[0]!.path!);
  const fields = (v1['fields'] as Json[]).map((f) => f['name']);
  t.notOk(
    fields.includes('electrode') || fields.includes('summary'),
    'v1 alerts had no electrode or summary',
  );
});

t.test('a folder whose old version the current one cannot read is refused at load', async (t) => {
  const dir = t.testdir({});
  mkdirSync(join(dir, 'v1'));
  const record = (fields: unknown[]) =>
    JSON.stringify({ type: 'record', name: 'io.xctsentinel.Slice', fields });
  for (const name of AVRO_SCHEMA_NAMES)
    writeFileSync(join(dir, `${name}.avsc`), record([{ name: 'a', type: 'int' }]));
  // v1 lacks the field and the current one gives no default: v1 data cannot be read.
  writeFileSync(join(dir, 'v1', 'slice.avsc'), record([{ name: 'b', type: 'int' }]));
  t.throws(() => loadAvroSchemas(dir), {
    code: 'ERR_CONFIG',
    message: /Slice v1 .*cannot be read by .*Slice v2/,
  });
  writeFileSync(join(dir, 'broken.avsc'), '{"type": "record"');
  t.throws(() => readAvscFile(join(dir, 'broken.avsc')), {
    code: 'ERR_CONFIG',
    message: /invalid Avro schema .*broken\.avsc/,
  });
});

t.test('the fingerprints listed in schemas/README.md are those of the files', async (t) => {
  const readme = readFileSync(join(DEFAULT_SCHEMAS_DIR, 'README.md'), 'utf8');
  const schemas = loadAvroSchemas();
  for (const name of AVRO_SCHEMA_NAMES) {
    const family = schemas[name];
    const line = readme.split('\n').find((l) => l.startsWith(`- \`${family.name.split('.').pop()}\` `));
    for (const v of family.versions) {
      t.match(line, `v${v.version} \`${fingerprintHex(v.fingerprint)}\``, `${family.name} v${v.version}`);
    }
  }
});
