import t from 'tap';
import { encodeSlice } from '../../src/codecs/avro-slice.ts';
import { readSliceMessage } from '../../src/kafka/slice-message.ts';
import { testSlice } from './slice-fixtures.ts';

const where = { topic: 'xct.slices', partition: 3, offset: '42' };
const noScan: Parameters<typeof readSliceMessage>[2] = { fileRoots: [], scanSize: () => undefined };

t.test('a valid slice message: the record and its pixels', async (t) => {
  const { slice, image } = await readSliceMessage(encodeSlice(testSlice('cell-7', 2)), where, noScan);
  t.equal(slice.scanId, 'cell-7');
  t.equal(slice.z, 2);
  t.same([image.width, image.height, image.dtype], [8, 8, 'uint16']);
});

t.test('hostile messages are refused with the message named and the reason', async (t) => {
  const refuse = (value: Buffer | null, o = noScan) => readSliceMessage(value, where, o);
  await t.rejects(refuse(null), {
    code: 'ERR_DECODE',
    message: /empty message \(a tombstone\?\)/,
    context: where,
  });
  await t.rejects(refuse(Buffer.from('not avro')), { code: 'ERR_DECODE', context: where });
  await t.rejects(refuse(encodeSlice({ ...testSlice('x', 0), scanId: '../etc' })), {
    message: /scan id "\.\.\/etc" may hold letters, digits/,
  });
  await t.rejects(refuse(encodeSlice({ ...testSlice('x', 0), scanId: '..' })), { message: /scan id "\.\."/ });
  await t.rejects(refuse(encodeSlice(testSlice('x', 4, { expected: 4 }))), {
    message: /slice z 4 of x is outside 0…3/,
  });
  await t.rejects(
    refuse(encodeSlice(testSlice('x', 1, { size: 8 })), {
      fileRoots: [],
      scanSize: () => ({ width: 16, height: 16 }),
    }),
    {
      message: "slice 1 of x is 8×8, the scan's slices are 16×16",
    },
  );
  const ref = {
    ...testSlice('x', 0),
    pixels: {
      width: 8,
      height: 8,
      dtype: 'uint16' as const,
      endianness: 'little' as const,
      path: '/etc/passwd',
      offset: 0,
      length: 128,
      sha256: '0'.repeat(64),
    },
  };
  await t.rejects(
    refuse(encodeSlice(ref)),
    { code: 'ERR_DECODE' },
    'a file reference with no file roots is not read',
  );
});
