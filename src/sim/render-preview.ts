import { encode } from 'fast-png';
import { percentileRange } from '../slices/normalize-slice.ts';
import type { Phantom } from './phantom.ts';
import { LABEL, renderSlice } from './render-slice.ts';

/** Outline colours: dendrite red, pit yellow, bubble cyan. */
const COLOURS: Record<number, [number, number, number]> = {
  [LABEL.dendrite]: [255, 40, 40],
  [LABEL.pit]: [255, 220, 0],
  [LABEL.bubble]: [0, 220, 255],
};

export interface PreviewOptions {
  /** The slice to show; default: the one with the most dendrite voxels. */
  slice?: number;
}

/**
 * A PNG for a person to judge realism: slice z (x–y) on the left and, on the right, the y–z reslice
 * through the column with the most dendrite voxels; raw above, ground truth outlined below.
 */
export function renderPreview(
  phantom: Phantom,
  options: PreviewOptions = {},
): { png: Uint8Array; slice: number; column: number } {
  const { size, slices } = phantom;
  const images: Uint16Array[] = [];
  const labels: Uint8Array[] = [];
  for (let z = 0; z < slices; z++) {
    const s = renderSlice(phantom, z);
    images.push(s.image);
    labels.push(s.labels);
  }
  const perSlice = labels.map((l) => l.reduce((n, v) => n + (v === LABEL.dendrite ? 1 : 0), 0));
  const slice = options.slice ?? perSlice.indexOf(Math.max(...perSlice));
  if (!Number.isInteger(slice) || slice < 0 || slice >= slices)
    throw new RangeError(`--slice must be from 0 to ${slices - 1}, got ${slice}`);
  const perColumn = new Uint32Array(size);
  for (const l of labels)
    for (let i = 0; i < l.length; i++)
      if (l[i] === LABEL.dendrite) perColumn[i % size] = (perColumn[i % size] as number) + 1;
  const column = perColumn.indexOf(Math.max(...perColumn));

  // Two rows: the raw image above (to judge realism), the same with the truth outlined below.
  const gap = 8;
  const width = size + gap + slices;
  const height = 2 * size + gap;
  const rgb = new Uint8Array(width * height * 3).fill(32);
  const image = images[slice] as Uint16Array;
  const [lo, hi] = percentileRange(image, 0.5, 99.5);
  const grey = (v: number) => Math.max(0, Math.min(255, Math.round(((v - lo) / Math.max(1, hi - lo)) * 255)));

  const paint = (px: number, py: number, value: number, label: number, outline: boolean) => {
    const g = grey(value);
    const raw = (py * width + px) * 3;
    rgb[raw] = g;
    rgb[raw + 1] = g;
    rgb[raw + 2] = g;
    const o = ((py + size + gap) * width + px) * 3;
    const colour = outline ? COLOURS[label] : undefined;
    rgb[o] = colour ? colour[0] : g;
    rgb[o + 1] = colour ? colour[1] : g;
    rgb[o + 2] = colour ? colour[2] : g;
  };
  const sliceLabels = labels[slice] as Uint8Array;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      const l = sliceLabels[i] as number;
      const edge =
        l !== 0 &&
        (x === 0 ||
          y === 0 ||
          x === size - 1 ||
          y === size - 1 ||
          sliceLabels[i - 1] !== l ||
          sliceLabels[i + 1] !== l ||
          sliceLabels[i - size] !== l ||
          sliceLabels[i + size] !== l);
      paint(x, y, image[i] as number, l, edge);
    }
  }
  // Reslice: horizontal axis is z, vertical is y, at x = column.
  const at = (z: number, y: number) => (labels[z] as Uint8Array)[y * size + column] as number;
  for (let z = 0; z < slices; z++) {
    for (let y = 0; y < size; y++) {
      const l = at(z, y);
      const edge =
        l !== 0 &&
        (z === 0 ||
          y === 0 ||
          z === slices - 1 ||
          y === size - 1 ||
          at(z - 1, y) !== l ||
          at(z + 1, y) !== l ||
          at(z, y - 1) !== l ||
          at(z, y + 1) !== l);
      paint(size + gap + z, y, (images[z] as Uint16Array)[y * size + column] as number, l, edge);
    }
  }
  return { png: encode({ width, height, data: rgb, channels: 3, depth: 8 }), slice, column };
}
