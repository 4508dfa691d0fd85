/** Alerts the Kafka tests write, shaped like the daemon's (ids from `alertIdFor`, as the daemon's are). */
import { alertIdFor, type DendriteAlert, type Severity } from '../../src/alerts/dendrite-alert.ts';

/** A dendrite alert for component `componentId` of `scanId`. */
export function dendriteAlert(
  scanId: string,
  componentId: number,
  severity: Severity = 'warning',
): DendriteAlert {
  return {
    alertId: alertIdFor(scanId, 'dendrite', componentId, severity),
    scanId,
    kind: 'dendrite',
    severity,
    raisedAt: 1_718_280_000_123 + componentId,
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
      name: 'unet-phantom',
      version: '2024.06.1',
      sha256: '9f2c4e1a7b3d5f6e8a0c2b4d6f8e0a1c3b5d7f9e1a3c5b7d9f0e2a4c6b8d0f1e',
      provider: 'cpu',
    },
    zarr: {
      path: `/data/xct/${scanId}.ome.zarr`,
      labels: 'labels/dendrite/0',
      probabilities: 'probabilities/0',
      region: { z: [118, 132], y: [201, 237], x: [77, 96] },
    },
    componentId,
    electrode: 'top',
    summary: null,
  };
}

/** The scan-summary alert that ends `scanId`. */
export function summaryAlert(scanId: string): DendriteAlert {
  const base = dendriteAlert(scanId, 0);
  return {
    ...base,
    alertId: alertIdFor(scanId, 'scan-summary', null, 'info'),
    kind: 'scan-summary',
    severity: 'critical',
    scanProgress: 1,
    sliceRange: { first: 0, last: 319 },
    bbox: null,
    confidence: 1,
    zarr: { ...base.zarr, region: { z: [0, 320], y: [0, 512], x: [0, 480] } },
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
}
