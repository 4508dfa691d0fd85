import {
  checkImageSize,
  resolveTileOptions,
  type TileOptions,
  type TileRect,
  tileGeometryKey,
} from './tile-grid.ts';

/** Collects a slice's patch probability maps and blends them into one probability image. */
export interface Stitcher {
  readonly width: number;
  readonly height: number;
  readonly tileCount: number;
  /** Tiles added since creation or the last `reset()`. */
  readonly received: number;
  /** Whether every tile is in, so `result()` may be called. */
  readonly complete: boolean;
  /** Add the `patch`×`patch` probability map of tile `tileIndex`; tiles may come in any order, each once. */
  add(tileIndex: number, probs: Float32Array): void;
  /** The blended probability image (row-major, `width*height`); throws until every tile is in. */
  result(out?: Float32Array): Float32Array;
  /** Forget the added tiles so the stitcher can take the next slice of the same geometry. */
  reset(): void;
}

/**
 * One side of the blending window: a raised-cosine ramp over `overlap` samples, 1 elsewhere.
 * Sampling at pixel centres ((i + 0.5) / overlap) keeps every weight strictly above 0, and the
 * ramps of two neighbours that overlap by exactly `overlap` sum to 1 (sin² + cos²).
 */
function ramp(i: number, overlap: number): number {
  if (i >= overlap) return 1;
  return 0.5 - 0.5 * Math.cos((Math.PI * (i + 0.5)) / overlap);
}

/** The separable `patch`×`patch` weight window, row-major, every value in (0, 1]. */
export function blendWindow(patch: number, overlap: number): Float64Array {
  const line = new Float64Array(patch);
  for (let i = 0; i < patch; i++) line[i] = Math.min(ramp(i, overlap), ramp(patch - 1 - i, overlap));
  const window = new Float64Array(patch * patch);
  for (let r = 0; r < patch; r++) {
    const wr = line[r]!;
    for (let c = 0; c < patch; c++) window[r * patch + c] = wr * line[c]!;
  }
  return window;
}

function checkTile(tile: TileRect, index: number, width: number, height: number, patch: number): void {
  const ok =
    Number.isInteger(tile.x) &&
    Number.isInteger(tile.y) &&
    Number.isInteger(tile.width) &&
    Number.isInteger(tile.height) &&
    tile.x >= 0 &&
    tile.y >= 0 &&
    tile.width >= 1 &&
    tile.height >= 1 &&
    tile.width <= patch &&
    tile.height <= patch &&
    tile.x + tile.width <= width &&
    tile.y + tile.height <= height;
  if (!ok) {
    throw new RangeError(
      `tile ${index} (${tile.x},${tile.y} ${tile.width}x${tile.height}) does not fit a ${width}x${height} image with patch ${patch}`,
    );
  }
}

/** Blend windows and per-pixel weight sums by geometry (read-only once made), the newest few kept. */
const WEIGHTS = new Map<string, { window: Float64Array; weightSum: Float64Array }>();
const MAX_GEOMETRIES = 8;

class PatchStitcher implements Stitcher {
  readonly width: number;
  readonly height: number;
  readonly #tiles: readonly TileRect[];
  readonly #patch: number;
  #window: Float64Array;
  // Float64 sums: a weighted mean of equal float32 values then rounds back to exactly that value.
  #weightSum: Float64Array;
  readonly #acc: Float64Array;
  readonly #seen: Uint8Array;
  // Tiles are blended strictly in index order, so the result is bit-identical whatever order they
  // arrive in; tiles that arrive early wait here (copied: the caller may reuse its buffer).
  readonly #early = new Map<number, Float32Array>();
  #next = 0;
  #received = 0;

  constructor(width: number, height: number, tiles: readonly TileRect[], patch: number, overlap: number) {
    checkImageSize(width, height);
    if (tiles.length === 0) throw new RangeError('a stitcher needs at least one tile');
    for (const [i, tile] of tiles.entries()) checkTile(tile, i, width, height, patch);
    this.width = width;
    this.height = height;
    this.#tiles = tiles.slice();
    this.#patch = patch;
    this.#acc = new Float64Array(width * height);
    this.#seen = new Uint8Array(tiles.length);
    // Every slice of a scan has the same geometry: its window and weight sums are worked out once.
    const key = `${tileGeometryKey(width, height, tiles)}/${patch}/${overlap}`;
    let weights = WEIGHTS.get(key);
    if (!weights) {
      this.#window = blendWindow(patch, overlap);
      this.#weightSum = new Float64Array(width * height);
      for (let i = 0; i < tiles.length; i++) this.#blend(this.#weightSum, i, undefined);
      const hole = this.#weightSum.indexOf(0);
      if (hole !== -1) {
        throw new RangeError(`tiles leave pixel (${hole % width},${Math.floor(hole / width)}) uncovered`);
      }
      weights = { window: this.#window, weightSum: this.#weightSum };
      if (WEIGHTS.size >= MAX_GEOMETRIES) WEIGHTS.delete(WEIGHTS.keys().next().value as string);
      WEIGHTS.set(key, weights);
    }
    this.#window = weights.window;
    this.#weightSum = weights.weightSum;
  }

  get tileCount(): number {
    return this.#tiles.length;
  }

  get received(): number {
    return this.#received;
  }

  get complete(): boolean {
    return this.#received === this.#tiles.length;
  }

  add(tileIndex: number, probs: Float32Array): void {
    if (!Number.isInteger(tileIndex) || tileIndex < 0 || tileIndex >= this.#tiles.length) {
      throw new RangeError(`tile index ${tileIndex} is not in [0, ${this.#tiles.length})`);
    }
    const area = this.#patch * this.#patch;
    if (probs.length !== area) {
      throw new RangeError(
        `tile ${tileIndex}: ${probs.length} probabilities, expected ${this.#patch}x${this.#patch}`,
      );
    }
    if (this.#seen[tileIndex] === 1) throw new Error(`tile ${tileIndex} was already added`);
    this.#seen[tileIndex] = 1;
    this.#received++;
    if (tileIndex !== this.#next) {
      this.#early.set(tileIndex, probs.slice());
      return;
    }
    this.#blend(this.#acc, tileIndex, probs);
    this.#next++;
    for (let waiting = this.#early.get(this.#next); waiting; waiting = this.#early.get(this.#next)) {
      this.#early.delete(this.#next);
      this.#blend(this.#acc, this.#next, waiting);
      this.#next++;
    }
  }

  result(out?: Float32Array): Float32Array {
    if (!this.complete) {
      throw new Error(
        `stitcher has ${this.#received} of ${this.#tiles.length} tiles; result() needs all of them`,
      );
    }
    const n = this.width * this.height;
    const image = out ?? new Float32Array(n);
    if (image.length !== n) throw new RangeError(`out holds ${image.length} values, expected ${n}`);
    const acc = this.#acc;
    const weightSum = this.#weightSum;
    for (let p = 0; p < n; p++) image[p] = acc[p]! / weightSum[p]!;
    return image;
  }

  reset(): void {
    this.#acc.fill(0);
    this.#seen.fill(0);
    this.#early.clear();
    this.#next = 0;
    this.#received = 0;
  }

  /** Add tile `index`'s weighted probabilities (or, without probs, its weights) into `target`. */
  #blend(target: Float64Array, index: number, probs: Float32Array | undefined): void {
    const tile = this.#tiles[index]!;
    const patch = this.#patch;
    const window = this.#window;
    const width = this.width;
    for (let r = 0; r < tile.height; r++) {
      const dst = (tile.y + r) * width + tile.x;
      const src = r * patch;
      if (probs) {
        for (let c = 0; c < tile.width; c++)
          target[dst + c] = target[dst + c]! + window[src + c]! * probs[src + c]!;
      } else {
        for (let c = 0; c < tile.width; c++) target[dst + c] = target[dst + c]! + window[src + c]!;
      }
    }
  }
}

/**
 * A stitcher for one image geometry: blends overlapping patches with a smooth raised-cosine window,
 * so a constant input comes out exactly constant (no seams) and the result does not depend on the
 * order patches arrive in. Options are the ones the tiles were made with; checked here, once.
 */
export function createStitcher(
  width: number,
  height: number,
  tiles: readonly TileRect[],
  options: TileOptions = {},
): Stitcher {
  const { patch, overlap } = resolveTileOptions(options);
  return new PatchStitcher(width, height, tiles, patch, overlap);
}
