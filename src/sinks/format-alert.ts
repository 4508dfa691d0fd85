import type { DendriteAlert } from '../alerts/dendrite-alert.ts';

const COLOURS = { info: '\x1b[36m', warning: '\x1b[33m', critical: '\x1b[1;31m' } as const;

/** One readable line per alert, for a person at a terminal. */
export function formatAlert(alert: DendriteAlert, colour = false): string {
  const time = new Date(alert.raisedAt).toISOString().slice(11, 19);
  const label = alert.severity.toUpperCase().padEnd(8);
  const sev = colour ? `${COLOURS[alert.severity]}${label}\x1b[0m` : label;
  const progress =
    alert.scanProgress === null ? '' : ` at ${Math.round(alert.scanProgress * 100)}% of the scan`;
  if (alert.kind === 'scan-summary' && alert.summary) {
    const s = alert.summary;
    return `${time} ${sev} scan ${alert.scanId} complete: ${s.slices} slices, ${s.dendriteCount} dendrite(s), largest ${s.largestHeightUm.toFixed(1)} µm (${Math.round(s.largestHeightFraction * 100)}% of the electrolyte), segmented ${(s.segmentedVolumeFraction * 100).toFixed(3)}% of the volume${s.missingSlices.length ? `, missing slices ${s.missingSlices.join(', ')}` : ''}\n`;
  }
  return `${time} ${sev} dendrite #${alert.componentId} in ${alert.scanId}: ${alert.heightUm.toFixed(1)} µm into the electrolyte (${Math.round(alert.heightFraction * 100)}%) from the ${alert.electrode} electrode, slices ${alert.sliceRange.first}–${alert.sliceRange.last}, ${alert.voxelCount} voxels, confidence ${alert.confidence.toFixed(2)}${progress}\n`;
}
