import t from 'tap';
import { decodeScanEvent, encodeScanEvent, type ScanEvent } from '../../src/codecs/avro-scan-event.ts';
import { loadAvroSchemas } from '../../src/codecs/avro-schemas.ts';
import { encodeSingleObject } from '../../src/codecs/avro-single-object.ts';

const STARTED: ScanEvent = {
  scanId: 'LiPEO-cell-042',
  kind: 'started',
  at: 1_718_280_000_000,
  acquiredSlices: 0,
  expectedSlices: 320,
  sampleId: 'Li|PEO|Li #42',
  voxelSizeUm: 0.65,
  scanProgress: 0,
  width: null,
  height: null,
  endReason: null,
  summary: null,
  summaryAlertId: null,
  failure: null,
};

const COMPLETED: ScanEvent = {
  ...STARTED,
  kind: 'completed',
  at: 1_718_280_600_000,
  acquiredSlices: 318,
  scanProgress: 318 / 320,
  width: 512,
  height: 512,
  endReason: 'idle-timeout',
  summary: {
    dendriteCount: 2,
    largestHeightUm: 18.2,
    largestHeightFraction: 0.25,
    segmentedVolumeFraction: 0.0001,
    slices: 318,
    missingSlices: [57, 203],
  },
  summaryAlertId: '5d0a1e7c-2f3b-8c49-9e6d-1a2b3c4d5e6f',
};

t.test('scan events round-trip', async (t) => {
  for (const event of [STARTED, { ...STARTED, kind: 'progress' as const, acquiredSlices: 80 }, COMPLETED]) {
    t.strictSame(decodeScanEvent(encodeScanEvent(event)), event, event.kind);
  }
});

t.test('scan events written with schema v1 decode with the current reader, defaults filled', async (t) => {
  const v1 = loadAvroSchemas()['scan-event'].versions.find((v) => v.version === 1)!;
  const { scanProgress, width, height, endReason, summary, summaryAlertId, ...v1Event } = COMPLETED;
  const decoded = decodeScanEvent(encodeSingleObject(v1, v1Event));
  t.strictSame(decoded, {
    ...v1Event,
    scanProgress: null,
    width: null,
    height: null,
    endReason: null,
    summary: null,
    summaryAlertId: null,
  });
});

t.test('a scan event is not an alert', async (t) => {
  t.throws(() => decodeScanEvent(Buffer.from('{"scanId":"x"}')), {
    name: 'DecodeError',
    message: /JSON text/,
  });
});
