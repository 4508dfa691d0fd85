import type { Dtype, TypedArray } from '../codecs/dtype.ts';
import type { TileRect } from './tile-grid.ts';

/** A slice the source says is complete on disk (or in Kafka), not yet read. */
export interface SliceRef {
  scanId: string;
  z: number;
  /** Where its bytes are; absent for slices that arrived inline. */
  path?: string;
  /** When it was complete and available (ms since epoch): the start of its latency. */
  readyAt: number;
}

/** A decoded slice. */
export interface DecodedSlice extends SliceRef {
  width: number;
  height: number;
  dtype: Dtype;
  data: TypedArray;
}

/** A decoded slice scaled as the model expects. */
export interface NormalizedSlice extends DecodedSlice {
  normalized: Float32Array;
  /**
   * What the model sees, when that is not `normalized`: the slice blended with its neighbours, or
   * for a three-channel model the slices z − 1, z, z + 1 as three planes, one after the other.
   */
  input?: Float32Array;
}

/**
 * One patch of a slice on its way to the model: where it lies. Its pixels are copied out of the
 * slice's normalized image straight into the batch that carries it (`inferBatches`).
 */
export interface PatchJob<S extends NormalizedSlice = NormalizedSlice> {
  slice: S;
  tiles: readonly TileRect[];
  tile: TileRect;
}

/** The model's probabilities for one patch. */
export interface PatchResult<S extends NormalizedSlice = NormalizedSlice> {
  job: PatchJob<S>;
  probs: Float32Array;
}

/** A slice with its stitched dendrite probability. */
export interface StitchedSlice extends NormalizedSlice {
  prob: Float32Array;
  patches: number;
}

/** A slice with its final mask. */
export interface MaskedSlice extends StitchedSlice {
  /** 1 where prob ≥ the model's threshold. */
  mask: Uint8Array;
  /** prob as the store keeps it and the tracker reads it: uint8, probability × 255 rounded. */
  storedProb: Uint8Array;
}
