import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { SliceFileRef } from '../../src/codecs/avro-slice.ts';
import { readSliceFileRef } from '../../src/kafka/read-slice-file-ref.ts';

// 4×4 uint16 little-endian pixels 0..15, as a producer would point at them.
const pixels = new Uint16Array(16).map((_, i) => i * 100);
const bytes = Buffer.from(pixels.buffer);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const ref = (path: string, over: Partial<SliceFileRef> = {}): SliceFileRef => ({
  width: 4,
  height: 4,
  dtype: 'uint16',
  endianness: 'little',
  path,
  offset: 0,
  length: bytes.byteLength,
  sha256: sha(bytes),
  ...over,
});

t.test(
  'a reference inside a root is read and checked; relative ones resolve against the first',
  async (t) => {
    const base = t.testdir({ a: {}, b: { sub: {} } });
    writeFileSync(join(base, 'b', 'sub', 'slice.raw'), bytes);
    const roots = [join(base, 'a'), join(base, 'b')];
    const image = await readSliceFileRef(ref(join(base, 'b', 'sub', 'slice.raw')), { roots });
    t.same(Array.from(image.data), Array.from(pixels));
    writeFileSync(join(base, 'a', 'rel.raw'), bytes);
    t.same(Array.from((await readSliceFileRef(ref('rel.raw'), { roots })).data), Array.from(pixels));
    // A symlink that stays inside the roots is fine.
    symlinkSync(join(base, 'b', 'sub', 'slice.raw'), join(base, 'a', 'link.raw'));
    t.same(Array.from((await readSliceFileRef(ref('link.raw'), { roots })).data), Array.from(pixels));
  },
);

t.test('file references are refused, unread, unless roots are configured', async (t) => {
  const base = t.testdir();
  writeFileSync(join(base, 'slice.raw'), bytes);
  for (const roots of [undefined, []]) {
    await t.rejects(readSliceFileRef(ref(join(base, 'slice.raw')), roots && { roots }), {
      code: 'ERR_DECODE',
      message: /file references are off.*fileRoots.*--file-root/,
    });
  }
});

t.test('nothing outside the roots is opened, and no error tells anything of its bytes', async (t) => {
  const base = t.testdir({ root: { inner: {} }, secret: {} });
  const root = join(base, 'root');
  // The secret has exactly the length a reference asks for: only a digest could give it away.
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');
  writeFileSync(join(base, 'secret', 'key.bin'), secret);
  symlinkSync(join(base, 'secret', 'key.bin'), join(root, 'inner', 'escape.raw'));
  symlinkSync(join(base, 'secret'), join(root, 'dirlink'));
  const cases: [string, RegExp][] = [
    [join(base, 'secret', 'key.bin'), /outside the file roots/],
    ['../secret/key.bin', /outside the file roots/],
    [join(root, '..', 'secret', 'key.bin'), /outside the file roots/],
    ['inner/escape.raw', /leads \(by a symlink\) to a file outside the file roots/],
    ['dirlink/key.bin', /leads \(by a symlink\) to a file outside the file roots/],
    ['/etc/passwd', /outside the file roots/],
  ];
  for (const [path, why] of cases) {
    const failure = await readSliceFileRef(ref(path, { length: secret.byteLength }), { roots: [root] }).catch(
      (err: unknown) => err as Error,
    );
    t.match(failure, { code: 'ERR_DECODE', message: why }, path);
    t.notMatch(String((failure as Error).message), sha(secret), `${path}: no digest of the secret`);
  }
});

t.test('a wrong SHA-256 is refused without the digest of what was read', async (t) => {
  const root = t.testdir();
  writeFileSync(join(root, 'slice.raw'), bytes);
  const failure = await readSliceFileRef(ref('slice.raw', { sha256: '0'.repeat(64) }), {
    roots: [root],
  }).catch((err: unknown) => err as Error);
  t.match(failure, {
    code: 'ERR_DECODE',
    message:
      /slice\.raw: the 32 bytes at offset 0 are not the pixels the slice message's SHA-256 0{64} names/,
  });
  t.notMatch((failure as Error).message, sha(bytes));
  t.notMatch(String((failure as Error & { cause?: unknown }).cause ?? ''), sha(bytes));
});

t.test(
  'short files, folders and FIFOs inside a root are clear errors, and a FIFO does not hang',
  async (t) => {
    const root = t.testdir({ dir: {} });
    writeFileSync(join(root, 'short.raw'), bytes.subarray(0, 10));
    execFileSync('mkfifo', [join(root, 'pipe.raw')]);
    await t.rejects(readSliceFileRef(ref('short.raw'), { roots: [root] }), {
      message: /short\.raw: holds 10 of the 32 pixel bytes/,
    });
    await t.rejects(readSliceFileRef(ref('dir'), { roots: [root] }), {
      message: /dir: is not a regular file/,
    });
    await t.rejects(readSliceFileRef(ref('pipe.raw'), { roots: [root] }), {
      message: /pipe\.raw: is not a regular file/,
    });
    await t.rejects(readSliceFileRef(ref('gone.raw'), { roots: [root] }), {
      message: /cannot read slice pixels from .*gone\.raw: ENOENT/,
    });
  },
);
