import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import * as zarr from 'zarrita';

/** zlib's default is 6; masks already shrink 100× at level 1, and level 5 takes ~3× as long. */
export const DEFAULT_GZIP_LEVEL = 1;

/**
 * zarrita 0.7 only decodes gzip. This codec encodes with node:zlib (standard gzip, so zarr-python,
 * tensorstore and neuroglancer read it) and decodes with it too; the level comes from the metadata.
 */
class NodeGzipCodec {
  readonly kind = 'bytes_to_bytes';
  readonly #level: number;

  constructor(level: number) {
    this.#level = level;
  }

  /** Build from a `{ level }` codec configuration. */
  static fromConfig(configuration: unknown): NodeGzipCodec {
    const level =
      typeof configuration === 'object' && configuration !== null
        ? (configuration as Record<string, unknown>)['level']
        : undefined;
    return new NodeGzipCodec(typeof level === 'number' ? level : DEFAULT_GZIP_LEVEL);
  }

  /** Compress on libuv's thread pool, so chunks of one slice compress in parallel. */
  async encode(bytes: Uint8Array): Promise<Uint8Array> {
    return gzipAsync(bytes, { level: this.#level });
  }

  /** Decompress one gzip member. */
  async decode(bytes: Uint8Array): Promise<Uint8Array> {
    return gunzipAsync(bytes);
  }
}

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

// zarrita's codec registry is process-wide: loading this module makes its `gzip` codec able to
// encode, for every store this process opens (decoding stays standard gzip). Said here, once, rather
// than done on the side by whichever function first reads or writes a store.
zarr.registry.set('gzip', async () => NodeGzipCodec);
