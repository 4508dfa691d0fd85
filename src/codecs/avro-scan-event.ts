/**
 * Scan lifecycle events on the scan-event topic (`schemas/scan-event.avsc`): started, progress,
 * completed with the scan's summary. The record is the event itself, field for field.
 */
import type { ScanSummary } from '../alerts/dendrite-alert.ts';
import {
  type DecodeAvroOptions,
  decodeAvroMessage,
  type EncodeAvroOptions,
  encodeAvroMessage,
} from './avro-message.ts';
import { loadAvroSchemas } from './avro-schemas.ts';

/** Where a scan is in its lifecycle. */
export type ScanEventKind = 'started' | 'progress' | 'completed';

/** One scan lifecycle event; nulls where the scanner or the scan's state does not tell. */
export interface ScanEvent {
  scanId: string;
  kind: ScanEventKind;
  /** Epoch milliseconds. */
  at: number;
  /** Slices received so far. */
  acquiredSlices: number;
  expectedSlices: number | null;
  sampleId: string | null;
  voxelSizeUm: number | null;
  /** acquiredSlices / expectedSlices (0–1) when the expected count is known. */
  scanProgress: number | null;
  width: number | null;
  height: number | null;
  /** Why a completed scan ended (`done-marker`, `expected-count`, `idle-timeout`…). */
  endReason: string | null;
  /** Set when completed. */
  summary: ScanSummary | null;
  /** The alertId of the scan's scan-summary alert, when completed. */
  summaryAlertId: string | null;
  /** Why the scan's outputs failed, on its completed event; null when it succeeded. */
  failure: string | null;
}

/** A scan event as a message for the scan-event topic. */
export function encodeScanEvent(event: ScanEvent, options: EncodeAvroOptions = {}): Buffer {
  return encodeAvroMessage(loadAvroSchemas()['scan-event'], event, options, { scanId: event.scanId });
}

/** A scan event from a message of any known schema version; DecodeError saying why it is not one. */
export function decodeScanEvent(message: Uint8Array, options: DecodeAvroOptions = {}): ScanEvent {
  return decodeAvroMessage(loadAvroSchemas()['scan-event'], message, options) as ScanEvent;
}
