/**
 * DendriteAlert ↔ Avro (`schemas/dendrite-alert.avsc`). The record is the alert itself, field for
 * field, with one exception: Avro enum symbols cannot hold '-', so kind `scan-summary` travels as
 * the symbol `scan_summary`.
 */
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { DecodeError } from '../errors.ts';
import {
  type DecodeAvroOptions,
  decodeAvroMessage,
  type EncodeAvroOptions,
  encodeAvroMessage,
} from './avro-message.ts';
import { loadAvroSchemas } from './avro-schemas.ts';

type Range = [number, number];

/** The alert as the Avro record holds it. */
interface AlertRecord extends Omit<DendriteAlert, 'kind' | 'zarr'> {
  kind: 'dendrite' | 'scan_summary';
  zarr: Omit<DendriteAlert['zarr'], 'region'> & { region: { z: number[]; y: number[]; x: number[] } };
}

/** An alert as a message for the alert topic (single-object encoding unless a registry id is given). */
export function encodeAlert(alert: DendriteAlert, options: EncodeAvroOptions = {}): Buffer {
  const record: AlertRecord = { ...alert, kind: alert.kind === 'scan-summary' ? 'scan_summary' : alert.kind };
  return encodeAvroMessage(loadAvroSchemas()['dendrite-alert'], record, options, { scanId: alert.scanId });
}

/** An alert from a message of any known schema version; DecodeError saying why it is not one. */
export function decodeAlert(message: Uint8Array, options: DecodeAvroOptions = {}): DendriteAlert {
  const record = decodeAvroMessage(loadAvroSchemas()['dendrite-alert'], message, options) as AlertRecord;
  const { region } = record.zarr;
  const axes = { z: region.z, y: region.y, x: region.x };
  for (const [axis, range] of Object.entries(axes)) {
    // The schema can only say "array of int"; the contract is a [start, stop) pair.
    if (range.length !== 2) {
      throw new DecodeError(
        `alert ${record.alertId}: zarr.region.${axis} holds ${range.length} numbers, expected [start, stop)`,
        { stage: 'decode', scanId: record.scanId, ...options.where },
      );
    }
  }
  return {
    ...record,
    kind: record.kind === 'scan_summary' ? 'scan-summary' : record.kind,
    zarr: { ...record.zarr, region: { z: axes.z as Range, y: axes.y as Range, x: axes.x as Range } },
  };
}
