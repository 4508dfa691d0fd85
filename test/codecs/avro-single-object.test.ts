import avro from 'avsc';
import t from 'tap';
import { decodeConfluentAvro, encodeConfluentAvro } from '../../src/codecs/avro-confluent.ts';
import { createAvroSchemaFamily } from '../../src/codecs/avro-schema-family.ts';
import {
  decodeSingleObject,
  encodeSingleObject,
  fingerprintHex,
} from '../../src/codecs/avro-single-object.ts';

const v1 = avro.Type.forSchema({
  type: 'record',
  name: 'test.Point',
  fields: [{ name: 'x', type: 'int' }],
});
const v2 = avro.Type.forSchema({
  type: 'record',
  name: 'test.Point',
  fields: [
    { name: 'x', type: 'int' },
    { name: 'label', type: ['null', 'string'], default: null },
  ],
});
const family = createAvroSchemaFamily([
  { version: 2, type: v2 },
  { version: 1, type: v1 },
]);

t.test('a family decodes every version it knows as its current one', async (t) => {
  t.equal(family.name, 'test.Point');
  t.equal(family.current.type, v2, 'the highest version is current');
  t.same(decodeSingleObject(family, encodeSingleObject(family.current, { x: 3, label: 'a' })), {
    x: 3,
    label: 'a',
  });
  t.same(decodeSingleObject(family, encodeSingleObject(family.versions[0]!, { x: -4 })), {
    x: -4,
    label: null,
  });
  // The spec's example: the single-object header of schema "int" (0x7275d51a3f395c8f, little-endian).
  const int = createAvroSchemaFamily([{ version: 1, type: avro.Type.forSchema('int') }]);
  const message = encodeSingleObject(int.current, 1);
  t.same([...message], [0xc3, 0x01, 0x8f, 0x5c, 0x39, 0x3f, 0x1a, 0xd5, 0x75, 0x72, 0x02]);
  t.equal(fingerprintHex(int.current.fingerprint), '0x7275d51a3f395c8f');
});

t.test('Confluent framing: id in, id out, errors for the rest', async (t) => {
  const message = encodeConfluentAvro(0x01020304, v1, { x: 9 });
  t.same([...message.subarray(0, 5)], [0, 1, 2, 3, 4]);
  const writers = new Map([[0x01020304, v1]]);
  t.same(decodeConfluentAvro(message, writers, v2), { schemaId: 0x01020304, value: { x: 9, label: null } });
  const where = { topic: 'tp', partition: 1, offset: '5' };
  t.throws(
    () => decodeConfluentAvro(encodeSingleObject(family.current, { x: 1, label: null }), writers, v2, where),
    {
      name: 'DecodeError',
      message: /not Confluent Schema Registry framing: starts with C3; expected 00/,
      context: { ...where, stage: 'decode' },
    },
  );
  t.throws(() => decodeConfluentAvro(message.subarray(0, 3), writers, v2), {
    message: /truncated Confluent header: 3 bytes/,
  });
  t.throws(() => decodeConfluentAvro(message.subarray(0, 5), writers, v2), {
    message: /truncated Avro body: the 0 bytes/,
  });
});
