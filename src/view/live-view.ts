/**
 * The live view's server side: what the browser page shows, kept as the daemon works. It is an
 * alert sink (alerts go to the timeline) and a slice observer (each finished slice updates its
 * scan's progress and the mask's maximum-intensity projections). Slice images are rendered to PNG
 * on request from the scan's OME-Zarr store, so the view holds no slice in memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { encode } from 'fast-png';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import type { AlertSink } from '../sinks/alert-sink.ts';
import { readZarrScanPlane } from '../sinks/zarr-scan-writer.ts';
import { DEFAULT_NORMALIZATION, normalizeSlice } from '../slices/normalize-slice.ts';
import type { MaskedSlice } from '../slices/slice-types.ts';
import { VIEW_PAGE } from './view-page.ts';

/** Scans kept after they complete, newest first. */
const RECENT_SCANS = 20;

interface ViewScan {
  scanId: string;
  width: number;
  height: number;
  expectedSlices: number | null;
  /** Slices whose outputs are written, ascending. */
  slices: number[];
  startedAt: number;
  lastAt: number;
  complete: boolean;
  alerts: DendriteAlert[];
  /** Mask maximum over y: one row of `width` per z (x–z side view). */
  mipXZ: Uint8Array[];
  /** Mask maximum over x: one row of `height` per z (y–z side view). */
  mipYZ: Uint8Array[];
}

export class LiveView implements AlertSink {
  readonly #out: string;
  readonly #scans = new Map<string, ViewScan>();
  readonly #clients = new Set<ServerResponse>();

  /** `out`: the daemon's output folder, where `<scanId>.ome.zarr` stores are. */
  constructor(out: string) {
    this.#out = out;
  }

  /** A slice is written (mask durable): progress and side views. */
  sliceDone(slice: MaskedSlice, expectedSlices: number | undefined): void {
    let scan = this.#scans.get(slice.scanId);
    if (!scan) {
      scan = {
        scanId: slice.scanId,
        width: slice.width,
        height: slice.height,
        expectedSlices: expectedSlices ?? null,
        slices: [],
        startedAt: Date.now(),
        lastAt: Date.now(),
        complete: false,
        alerts: [],
        mipXZ: [],
        mipYZ: [],
      };
      this.#scans.set(slice.scanId, scan);
      this.#trim();
    }
    scan.expectedSlices = expectedSlices ?? scan.expectedSlices;
    scan.slices.push(slice.z);
    scan.lastAt = Date.now();
    const { width, height, mask } = slice;
    const xz = new Uint8Array(width);
    const yz = new Uint8Array(height);
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) {
        if (mask[row + x]) {
          xz[x] = 1;
          yz[y] = 1;
        }
      }
    }
    scan.mipXZ[slice.z] = xz;
    scan.mipYZ[slice.z] = yz;
    this.#broadcast('scan', this.#summary(scan));
  }

  async write(alert: DendriteAlert): Promise<void> {
    const scan = this.#scans.get(alert.scanId);
    if (!scan) return;
    if (alert.kind === 'scan-summary') scan.complete = true;
    else scan.alerts.push(alert);
    this.#broadcast(
      alert.kind === 'scan-summary' ? 'scan' : 'alert',
      alert.kind === 'scan-summary' ? this.#summary(scan) : alert,
    );
  }

  async close(): Promise<void> {
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }

  /** Serve the view's routes; false when the request is not one of them. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://view');
    const path = url.pathname;
    if (path === '/' || path === '/view') {
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
        .end(VIEW_PAGE);
      return true;
    }
    if (path === '/api/scans') {
      const list = [...this.#scans.values()].map((s) => this.#summary(s)).reverse();
      json(res, list);
      return true;
    }
    if (path === '/api/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(': connected\n\n');
      this.#clients.add(res);
      req.on('close', () => this.#clients.delete(res));
      return true;
    }
    const m = /^\/api\/scans\/([^/]+)\/(alerts|slice\/(\d+)\.png|mask\/(\d+)\.png|mip\/(xz|yz)\.png)$/.exec(
      path,
    );
    if (!m) return false;
    const scan = this.#scans.get(decodeURIComponent(m[1] as string));
    if (!scan) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such scan\n');
      return true;
    }
    if (m[2] === 'alerts') json(res, scan.alerts);
    else if (m[5] !== undefined) png(res, this.#mip(scan, m[5] as 'xz' | 'yz'));
    else {
      const z = Number(m[3] ?? m[4]);
      if (!scan.slices.includes(z)) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`slice ${z} is not processed yet\n`);
        return true;
      }
      const kind = m[3] !== undefined ? 'image' : 'mask';
      this.#renderSlice(scan, z, kind).then(
        (image) => png(res, image),
        (err: unknown) =>
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`cannot render slice ${z}: ${String(err)}\n`),
      );
    }
    return true;
  }

  #summary(s: ViewScan) {
    const seconds = Math.max(0.001, (s.lastAt - s.startedAt) / 1000);
    return {
      scanId: s.scanId,
      width: s.width,
      height: s.height,
      processed: s.slices.length,
      lastSlice: s.slices.at(-1) ?? null,
      expectedSlices: s.expectedSlices,
      slicesPerSecond: s.slices.length > 1 ? (s.slices.length - 1) / seconds : 0,
      alerts: s.alerts.length,
      complete: s.complete,
    };
  }

  async #renderSlice(scan: ViewScan, z: number, kind: 'image' | 'mask') {
    const { width, height, data } = await readZarrScanPlane(
      join(this.#out, `${scan.scanId}.ome.zarr`),
      z,
      kind,
    );
    if (kind === 'image') {
      const normalized = normalizeSlice(data, DEFAULT_NORMALIZATION);
      const gray = new Uint8ClampedArray(width * height);
      for (let i = 0; i < gray.length; i++) gray[i] = (normalized[i] as number) * 255;
      return { width, height, data: new Uint8Array(gray.buffer), channels: 1 };
    }
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      if (data[i]) {
        rgba[i * 4] = 255;
        rgba[i * 4 + 1] = 40;
        rgba[i * 4 + 2] = 40;
        rgba[i * 4 + 3] = 255;
      }
    }
    return { width, height, data: rgba, channels: 4 };
  }

  /**
   * The mask's projection so far. x–z: x across, z down (a view from the side, along y). y–z: z
   * across, y down, so the electrodes lie where they lie in the slice and a dendrite's height
   * through the electrolyte reads vertically. Rows or columns not processed yet stay black.
   */
  #mip(scan: ViewScan, view: 'xz' | 'yz') {
    const depth = Math.max(1, scan.expectedSlices ?? 0, scan.mipXZ.length);
    if (view === 'xz') {
      const width = scan.width;
      const data = new Uint8Array(width * depth);
      scan.mipXZ.forEach((row, z) => {
        for (let x = 0; x < width; x++) data[z * width + x] = row[x] ? 255 : 40;
      });
      return { width, height: depth, data, channels: 1 };
    }
    const height = scan.height;
    const data = new Uint8Array(depth * height);
    scan.mipYZ.forEach((column, z) => {
      for (let y = 0; y < height; y++) data[y * depth + z] = column[y] ? 255 : 40;
    });
    return { width: depth, height, data, channels: 1 };
  }

  #broadcast(event: string, data: unknown): void {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const client of this.#clients) client.write(text);
  }

  #trim(): void {
    const done = [...this.#scans.values()].filter((s) => s.complete);
    for (const s of done.slice(0, Math.max(0, done.length - RECENT_SCANS))) this.#scans.delete(s.scanId);
  }
}

function json(res: ServerResponse, value: unknown): void {
  res
    .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(JSON.stringify(value));
}

function png(
  res: ServerResponse,
  image: { width: number; height: number; data: Uint8Array; channels: number },
): void {
  const bytes = encode({ ...image, depth: 8 });
  res.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'no-store' }).end(bytes);
}
