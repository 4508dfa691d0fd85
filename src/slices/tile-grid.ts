import { ConfigError } from '../errors.ts';

/** How a slice is cut into the square patches the model sees. */
export interface TileOptions {
  /** Side of the square patch, in pixels (128 for T-Net). */
  readonly patch?: number;
  /** Pixels shared by neighbouring tiles; the stride is `patch - overlap`. */
  readonly overlap?: number;
}

/** Tile options with every default filled in and checked. */
export interface ResolvedTileOptions {
  readonly patch: number;
  readonly overlap: number;
}

/** One tile: where its patch starts in the image and how much of the patch lies inside the image. */
export interface TileRect {
  /** Position in the list `tileGrid` returned; the stitcher addresses tiles by it. */
  readonly index: number;
  /** Image column of the patch's first column. */
  readonly x: number;
  /** Image row of the patch's first row. */
  readonly y: number;
  /** Image columns inside the patch: `patch`, or the image width where the image is narrower (the rest is padding). */
  readonly width: number;
  /** Image rows inside the patch: `patch`, or the image height where the image is shorter. */
  readonly height: number;
}

/** The model's patch size and the overlap that hides seams at the patch borders. */
export const TILE_DEFAULTS: ResolvedTileOptions = Object.freeze({ patch: 128, overlap: 32 });

/** Fill in and check tile options; throws `ConfigError` naming the offending option. */
export function resolveTileOptions(options: TileOptions = {}): ResolvedTileOptions {
  const patch = options.patch ?? TILE_DEFAULTS.patch;
  const overlap = options.overlap ?? TILE_DEFAULTS.overlap;
  if (!Number.isInteger(patch) || patch < 1) {
    throw new ConfigError(`tile option "patch" must be an integer >= 1, got ${patch}`, {
      option: 'patch',
      stage: 'tile',
    });
  }
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= patch) {
    throw new ConfigError(
      `tile option "overlap" must be an integer >= 0 and smaller than patch (${patch}), got ${overlap}`,
      { option: 'overlap', stage: 'tile' },
    );
  }
  return Object.freeze({ patch, overlap });
}

/** Throws unless width and height are positive integers (a programming error, not a config one). */
export function checkImageSize(width: number, height: number): void {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new RangeError(`image size must be positive integers, got ${width}x${height}`);
  }
}

/**
 * Start positions along one axis: every `stride` pixels, with the last tile snapped flush to the
 * far edge so no tile reaches past the image; one tile at 0 when the image is shorter than a patch.
 */
function axisStarts(size: number, patch: number, stride: number): number[] {
  if (size <= patch) return [0];
  const starts: number[] = [];
  for (let s = 0; s + patch < size; s += stride) starts.push(s);
  starts.push(size - patch);
  return starts;
}

/** Tiles covering a `width`×`height` image, row by row (y outer, x inner). */
export function tileGrid(width: number, height: number, options: TileOptions = {}): TileRect[] {
  const { patch, overlap } = resolveTileOptions(options);
  checkImageSize(width, height);
  const stride = patch - overlap;
  const xs = axisStarts(width, patch, stride);
  const ys = axisStarts(height, patch, stride);
  const tileWidth = Math.min(patch, width);
  const tileHeight = Math.min(patch, height);
  const tiles: TileRect[] = [];
  for (const y of ys) {
    for (const x of xs) {
      tiles.push(Object.freeze({ index: tiles.length, x, y, width: tileWidth, height: tileHeight }));
    }
  }
  return tiles;
}

/** A string naming an image size and its tiles: equal for slices a stitcher can be shared by. */
export function tileGeometryKey(width: number, height: number, tiles: readonly TileRect[]): string {
  return `${width}x${height}:${tiles.map((t) => `${t.x},${t.y},${t.width},${t.height}`).join(';')}`;
}

/**
 * Mirror an index into [0, n) without repeating the edge pixel (numpy's `reflect`: … 2 1 0 1 2 …),
 * repeating the reflection as often as needed so a patch may be many times the image size.
 */
export function reflectIndex(i: number, n: number): number {
  if (i >= 0 && i < n) return i;
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}

/**
 * Copy the given tiles out of a row-major image into one buffer of `tiles.length` patches of
 * `patch`×`patch` (patch k at `k*patch*patch`), reflect-padding wherever a patch reaches past the image.
 * Pass `out` to reuse a buffer; it must hold at least that many values.
 */
export function extractPatches(
  image: Float32Array,
  width: number,
  height: number,
  tiles: readonly TileRect[],
  patch: number,
  out?: Float32Array,
): Float32Array {
  checkImageSize(width, height);
  if (!Number.isInteger(patch) || patch < 1)
    throw new RangeError(`patch must be an integer >= 1, got ${patch}`);
  if (image.length !== width * height) {
    throw new RangeError(`image has ${image.length} values, expected ${width}x${height} = ${width * height}`);
  }
  const area = patch * patch;
  const needed = tiles.length * area;
  const buffer = out ?? new Float32Array(needed);
  if (buffer.length < needed) throw new RangeError(`out holds ${buffer.length} values, ${needed} needed`);
  // Column lookup for tiles that reach past the right edge; only images narrower than a patch need it.
  let columns: Int32Array | undefined;
  let columnsFor = Number.NaN;
  for (let k = 0; k < tiles.length; k++) {
    const tile = tiles[k]!;
    const base = k * area;
    const inside = tile.x >= 0 && tile.x + patch <= width;
    if (!inside && columnsFor !== tile.x) {
      columns ??= new Int32Array(patch);
      for (let c = 0; c < patch; c++) columns[c] = reflectIndex(tile.x + c, width);
      columnsFor = tile.x;
    }
    for (let r = 0; r < patch; r++) {
      const rowStart = reflectIndex(tile.y + r, height) * width;
      const dst = base + r * patch;
      if (inside) {
        buffer.set(image.subarray(rowStart + tile.x, rowStart + tile.x + patch), dst);
      } else {
        const map = columns!;
        for (let c = 0; c < patch; c++) buffer[dst + c] = image[rowStart + map[c]!]!;
      }
    }
  }
  return buffer;
}

/**
 * `extractPatches` for an input of `channels` planes one after the other (C·H·W): patch k's plane c
 * lands at `(k·channels + c)·patch²`, the N×C×P×P layout the model takes.
 */
export function extractPlanePatches(
  planes: Float32Array,
  channels: number,
  width: number,
  height: number,
  tiles: readonly TileRect[],
  patch: number,
  out?: Float32Array,
): Float32Array {
  const plane = width * height;
  if (planes.length !== channels * plane)
    throw new RangeError(`input has ${planes.length} values, expected ${channels}x${width}x${height}`);
  if (channels === 1) return extractPatches(planes, width, height, tiles, patch, out);
  const area = patch * patch;
  const buffer = out ?? new Float32Array(tiles.length * channels * area);
  if (buffer.length < tiles.length * channels * area)
    throw new RangeError(`out holds ${buffer.length} values, ${tiles.length * channels * area} needed`);
  tiles.forEach((tile, k) => {
    for (let c = 0; c < channels; c++) {
      const at = (k * channels + c) * area;
      extractPatches(
        planes.subarray(c * plane, (c + 1) * plane),
        width,
        height,
        [tile],
        patch,
        buffer.subarray(at, at + area),
      );
    }
  });
  return buffer;
}
