import { createPhantom, type PhantomOptions } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';

/** A simulated scan's slice images, rendered once. */
export function renderScan(options: PhantomOptions & { size: number; slices: number }): Uint16Array[] {
  const phantom = createPhantom(options);
  return Array.from({ length: options.slices }, (_, z) => renderSlice(phantom, z).image);
}

/**
 * A whole scan as source events with its pixels in hand (scan-start, the slices `zs`, scan-end):
 * decoding them needs no I/O, so what the daemon does with them does not wait on the disk.
 */
export function memoryScan(
  scanId: string,
  images: readonly Uint16Array[],
  size: number,
  options: { zs?: readonly number[]; reason?: string } = {},
): SourceEvent[] {
  const slices = images.length;
  const zs = options.zs ?? images.map((_, z) => z);
  return [
    { type: 'scan-start', scanId, meta: { expectedSlices: slices } },
    ...zs.map(
      (z): SourceEvent => ({
        type: 'slice',
        scanId,
        z,
        readyAt: 0,
        image: { width: size, height: size, dtype: 'uint16', data: images[z] as Uint16Array },
      }),
    ),
    { type: 'scan-end', scanId, reason: options.reason ?? 'expected-count', slices, missing: [] },
  ];
}
