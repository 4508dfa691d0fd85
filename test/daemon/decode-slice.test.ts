import t from 'tap';
import { sliceMisfit } from '../../src/daemon/decode-slice.ts';

const image = (width: number, height: number, dtype: 'uint16' | 'float32' = 'uint16') => ({
  width,
  height,
  dtype,
  data: dtype === 'uint16' ? new Uint16Array(width * height) : new Float32Array(width * height),
});
const ref = { scanId: 'cell', z: 7, path: '/scans/cell/slice_0007.tif', readyAt: 0 };

t.test('a slice that fits its scan goes on; the first one sets what fits', async (t) => {
  t.equal(sliceMisfit(image(64, 32), {}, ref), undefined, 'the first slice of a scan');
  t.equal(sliceMisfit(image(64, 32), { width: 64, height: 32, dtype: 'uint16' }, ref), undefined);
  t.equal(
    sliceMisfit(image(640, 2), {}, ref),
    undefined,
    'thin is not too small (tooth projections are 640×2)',
  );
});

t.test('a slice that does not fit is refused with the file and the reason', async (t) => {
  t.match(sliceMisfit(image(1, 32), {}, ref), {
    code: 'ERR_DECODE',
    message: '/scans/cell/slice_0007.tif: 1×32 is too small to be a reconstructed slice (at least 2×2)',
  });
  t.match(sliceMisfit(image(64, 32, 'float32'), { width: 64, height: 32, dtype: 'uint16' }, ref), {
    message: "/scans/cell/slice_0007.tif: float32 pixels differ from the scan's uint16",
  });
  t.match(sliceMisfit(image(64, 33), { width: 64, height: 32, dtype: 'uint16' }, ref), {
    message: "/scans/cell/slice_0007.tif: 64×33 differs from the scan's 64×32",
  });
  const inline = { scanId: 'cell', z: 7, readyAt: 0 };
  t.match(
    sliceMisfit(image(1, 1), {}, inline),
    { message: /^slice 7 of cell: 1×1 is too small/ },
    'no file: the slice and scan are named',
  );
});
