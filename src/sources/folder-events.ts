import type { SourceEvent } from './source-event.ts';

/**
 * What the folder source emits: the one `SourceEvent` type every source emits, narrowed to what a
 * folder always says (the scan folder, each slice's file, why a scan ended). Per scan: `scan-start`
 * first (carrying `scan.json` when one was there), then slices in increasing z, each z exactly
 * once as `slice` or `slice-missing`, `scan-meta` whenever `scan.json` changes, and `scan-end` last.
 */
type Event<K extends SourceEvent['type']> = Extract<SourceEvent, { type: K }>;

/** Why a scan ended. */
export type ScanEndReason = 'done-marker' | 'expected-count' | 'idle-timeout';

/** A scan folder appeared (or was there at start-up). */
export type ScanStartEvent = Event<'scan-start'> & { dir: string };

/** `scan.json` arrived (or changed) after `scan-start` was emitted. */
export type ScanMetaEvent = Event<'scan-meta'>;

/** A completely written slice file (`readyAt`: when it was seen complete), in increasing z per scan. */
export type SliceEvent = Omit<Event<'slice'>, 'image'> & { path: string };

/** A z that will not arrive: given up after a timeout, or the scan ended without it. */
export type SliceMissingEvent = Event<'slice-missing'>;

/** The last event of a scan (`slices`: how many were emitted). */
export type ScanEndEvent = Event<'scan-end'> & { reason: ScanEndReason };

/** Something odd that the source skipped; the stream goes on. */
export type FolderErrorEvent = Event<'error'>;

/** Everything `watchFolder` emits: a `SourceEvent` in every case. */
export type FolderEvent =
  | ScanStartEvent
  | ScanMetaEvent
  | SliceEvent
  | SliceMissingEvent
  | ScanEndEvent
  | FolderErrorEvent;
