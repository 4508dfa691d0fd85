import { readFileSync } from 'node:fs';
import avro from 'avsc';
import t from 'tap';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { decodeAlert, encodeAlert } from '../../src/codecs/avro-alert.ts';
import { AVRO_TYPE_OPTIONS, loadAvroSchemas } from '../../src/codecs/avro-schemas.ts';
import { encodeSingleObject } from '../../src/codecs/avro-single-object.ts';
import { encodeSlice } from '../../src/codecs/avro-slice.ts';
import { DecodeError } from '../../src/errors.ts';

const DENDRITE: DendriteAlert = {
  alertId: '3b1f0c2e-9d47-8a65-b3c2-7e1d0f9a8b6c',
  scanId: 'LiPEO-cell-042',
  kind: 'dendrite',
  severity: 'warning',
  raisedAt: 1_718_280_000_123,
  scanProgress: 0.4125,
  sliceRange: { first: 118, last: 131 },
  bbox: {
    voxels: { zMin: 118, zMax: 131, yMin: 201, yMax: 236, xMin: 77, xMax: 95 },
    um: { zMin: 76.7, zMax: 85.8, yMin: 130.65, yMax: 154.05, xMin: 50.05, xMax: 62.4 },
  },
  voxelCount: 3_481,
  volumeUm3: 956.04,
  heightUm: 22.75,
  heightFraction: 0.3125,
  confidence: 0.9312,
  model: {
    name: 'tnet-phantom',
    version: '2024.06.1',
    sha256: '9f2c4e1a7b3d5f6e8a0c2b4d6f8e0a1c3b5d7f9e1a3c5b7d9f0e2a4c6b8d0f1e',
    provider: 'cpu',
  },
  zarr: {
    path: '/data/xct/LiPEO-cell-042.ome.zarr',
    labels: 'labels/dendrite/0',
    probabilities: 'probabilities/0',
    region: { z: [118, 132], y: [201, 237], x: [77, 96] },
  },
  componentId: 17,
  electrode: 'top',
  summary: null,
};

const SUMMARY: DendriteAlert = {
  ...DENDRITE,
  alertId: '5d0a1e7c-2f3b-8c49-9e6d-1a2b3c4d5e6f',
  kind: 'scan-summary',
  severity: 'critical',
  scanProgress: null,
  sliceRange: { first: 0, last: 319 },
  bbox: null,
  voxelCount: 12_940_117_503, // more than an int holds: voxelCount is an Avro long
  confidence: 1,
  zarr: { ...DENDRITE.zarr, region: { z: [0, 320], y: [0, 512], x: [0, 512] } },
  componentId: null,
  electrode: null,
  summary: {
    dendriteCount: 3,
    largestHeightUm: 41.6,
    largestHeightFraction: 0.57,
    segmentedVolumeFraction: 0.000153,
    slices: 318,
    missingSlices: [57, 203],
  },
};

const where = { topic: 'xct.dendrite-alerts', partition: 3, offset: '1842' };

t.test('alerts round-trip through single-object encoding, field for field', async (t) => {
  for (const alert of [DENDRITE, SUMMARY]) {
    const message = encodeAlert(alert);
    t.same([...message.subarray(0, 2)], [0xc3, 0x01], 'starts with C3 01');
    t.same(
      [...message.subarray(2, 10)],
      [...loadAvroSchemas()['dendrite-alert'].current.fingerprint],
      'then the current schema fingerprint',
    );
    t.strictSame(decodeAlert(message), alert, `${alert.kind} alert comes back as plain, equal objects`);
  }
});

t.test('an encoded alert fits the schema or names the fields that do not', async (t) => {
  const bad = { ...DENDRITE, voxelCount: 1.5, severity: 'urgent' } as unknown as DendriteAlert;
  t.throws(() => encodeAlert(bad), {
    code: 'ERR_OUTPUT',
    message:
      /severity: 'urgent' is not a valid io\.xctsentinel\.Severity.*voxelCount: 1\.5 is not a valid long/,
    context: { scanId: DENDRITE.scanId, stage: 'encode' },
  });
});

t.test('alerts written with schema v1 decode with the current reader, defaults filled', async (t) => {
  const family = loadAvroSchemas()['dendrite-alert'];
  const v1 = family.versions.find((v) => v.version === 1)!;
  // v1 is read from its own file, as the producer that still has it would.
  const v1Type = avro.Type.forSchema(JSON.parse(readFileSync(v1.path!, 'utf8')), { ...AVRO_TYPE_OPTIONS });
  t.notOk(v1Type.schema().toString().includes('electrode'), 'v1 really lacks electrode');
  const { electrode: _e, summary: _s, ...v1Alert } = DENDRITE;
  const message = encodeSingleObject(v1, v1Alert);
  t.same([...message.subarray(2, 10)], [...v1.fingerprint], 'header names v1');
  t.strictSame(decodeAlert(message), { ...DENDRITE, electrode: null, summary: null });
});

t.test('Confluent Schema Registry framing round-trips with ids given by the caller', async (t) => {
  const family = loadAvroSchemas()['dendrite-alert'];
  const message = encodeAlert(SUMMARY, { confluentSchemaId: 1042 });
  t.same([...message.subarray(0, 5)], [0, 0, 0, 0x04, 0x12], 'byte 0, then id 1042 big-endian');
  const writers = new Map([
    [1042, family.current.type],
    [7, family.versions[0]!.type],
  ]);
  t.strictSame(decodeAlert(message, { confluentWriters: writers }), SUMMARY);
  t.strictSame(
    decodeAlert(encodeAlert(DENDRITE), { confluentWriters: writers }),
    DENDRITE,
    'single-object too',
  );
  const { electrode: _e, summary: _s, ...v1Alert } = DENDRITE;
  const v1Message = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), family.versions[0]!.type.toBuffer(v1Alert)]);
  t.strictSame(decodeAlert(v1Message, { confluentWriters: writers }), {
    ...DENDRITE,
    electrode: null,
    summary: null,
  });
  t.throws(
    () =>
      decodeAlert(Buffer.concat([Buffer.from([0, 0, 0, 0, 9]), message.subarray(5)]), {
        confluentWriters: writers,
      }),
    {
      message: /unknown Schema Registry id 9 .*known ids: 1042, 7/,
    },
  );
  t.throws(() => decodeAlert(message, { where }), {
    message: /not Avro single-object encoding: .*Confluent Schema Registry framing \(schema id 1042\)/,
  });
  t.throws(() => encodeAlert(DENDRITE, { confluentSchemaId: -1 }), RangeError);
});

t.test('poison messages fail with a DecodeError that says why and where', async (t) => {
  const message = encodeAlert(DENDRITE);
  const expectDecodeError = (bytes: Uint8Array, reason: RegExp, label: string) => {
    try {
      decodeAlert(bytes, { where });
      t.fail(`${label}: decoded`);
    } catch (err) {
      t.type(err, DecodeError, label);
      t.match(err, { code: 'ERR_DECODE', message: reason, context: { ...where, stage: 'decode' } }, label);
    }
  };

  let seed = 12345;
  const random = (n: number) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      out[i] = (seed >>> 16) & 0xff;
    }
    return out;
  };
  const noise = random(300);
  noise[0] = 0x42;
  expectDecodeError(noise, /^not Avro single-object encoding: starts with 42 /, 'random bytes');
  expectDecodeError(
    Buffer.from(JSON.stringify(DENDRITE)),
    /starts with 7B 22 .*looks like JSON text/,
    'JSON text',
  );
  expectDecodeError(Buffer.alloc(0), /not Avro single-object encoding: empty message/, 'empty message');

  // Every prefix of a good message is refused, never half-decoded.
  for (let cut = 1; cut < message.length; cut++) {
    const reason = cut < 10 ? /^truncated single-object header/ : /truncated Avro body/;
    expectDecodeError(message.subarray(0, cut), reason, `truncated to ${cut} bytes`);
  }
  expectDecodeError(
    Buffer.concat([message, Buffer.from([0])]),
    /1 trailing byte after the record/,
    'trailing byte',
  );

  const otherFingerprint = Buffer.from(message);
  otherFingerprint[9]! ^= 0xff;
  expectDecodeError(
    otherFingerprint,
    /^unknown schema fingerprint 0x.*io\.xctsentinel\.DendriteAlert .*v1 0x.*v2 0x/,
    'unknown',
  );

  const slice = encodeSlice({
    scanId: 's',
    z: 0,
    expectedSlices: null,
    voxelSizeUm: null,
    acquiredAt: 0,
    pixels: { width: 1, height: 1, dtype: 'uint8', data: Uint8Array.of(7) },
  });
  expectDecodeError(slice, /^unknown schema fingerprint/, 'a slice on the alert topic');

  // Random bodies behind a valid header: whatever avsc makes of them, the answer is a DecodeError.
  const header = message.subarray(0, 10);
  for (let i = 0; i < 40; i++) {
    expectDecodeError(Buffer.concat([header, random(20 + i * 7)]), /Avro body|trailing/, `random body ${i}`);
  }

  const current = loadAvroSchemas()['dendrite-alert'].current;
  const threeNumbers = {
    ...DENDRITE,
    zarr: { ...DENDRITE.zarr, region: { z: [1, 2, 3], y: [0, 1], x: [0, 1] } },
  };
  expectDecodeError(encodeSingleObject(current, threeNumbers), /zarr\.region\.z holds 3 numbers/, 'region');
});
