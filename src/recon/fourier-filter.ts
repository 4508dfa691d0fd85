import FFT from 'fft.js';
import { ConfigError } from '../errors.ts';

/** The ramp filters of filtered back-projection, by the names TomoPy and scikit-image use. */
export const FBP_FILTERS = ['shepp-logan', 'ramp', 'ram-lak', 'hann'] as const;
export type FbpFilter = (typeof FBP_FILTERS)[number];

/** Check a filter name from an option or a file; a ConfigError naming `option` otherwise. */
export function fbpFilter(name: string, option = '--filter'): FbpFilter {
  if (!(FBP_FILTERS as readonly string[]).includes(name))
    throw new ConfigError(`${option}: "${name}" is not a filter; use one of ${FBP_FILTERS.join(', ')}`, {
      option,
    });
  return name as FbpFilter;
}

/**
 * The filter's frequency response for an FFT of `size` (a power of two), in FFT order (index k is
 * frequency k/size, the upper half negative). The ramp is not |k| sampled in frequency: it is the
 * transform of the band-limited ramp's spatial kernel (0.25 at 0, −1/(πn)² at odd n, 0 at even n),
 * which removes the DC bias a sampled |k| leaves (Kak & Slaney, ch. 3, eq. 61; scikit-image's
 * `iradon` builds it the same way). Shepp-Logan multiplies it by sinc, Hann by a Hann window
 * centred on frequency 0. Ram-Lak is the plain ramp.
 */
export function fourierFilter(size: number, filter: FbpFilter): Float64Array {
  if (!Number.isInteger(size) || size < 2 || (size & (size - 1)) !== 0)
    throw new RangeError(`filter size must be a power of two ≥ 2, got ${size}`);
  const kernel = new Float64Array(size);
  kernel[0] = 0.25;
  for (let k = 1; k < size; k += 2) {
    const n = k < size / 2 ? k : size - k;
    kernel[k] = -1 / (Math.PI * n) ** 2;
  }
  const fft = new FFT(size);
  const spectrum = fft.createComplexArray();
  fft.realTransform(spectrum, kernel);
  fft.completeSpectrum(spectrum);
  const response = new Float64Array(size);
  for (let k = 0; k < size; k++) response[k] = 2 * (spectrum[2 * k] as number);
  if (filter === 'shepp-logan') {
    for (let k = 1; k < size; k++) {
      const omega = (Math.PI * (k < size / 2 ? k : k - size)) / size;
      response[k] = (response[k] as number) * (Math.sin(omega) / omega);
    }
  } else if (filter === 'hann') {
    // A Hann window of `size` points peaking at the centre, shifted so that its peak is at k = 0.
    for (let k = 0; k < size; k++) {
      const n = (k + size / 2) % size;
      response[k] = (response[k] as number) * (0.5 - 0.5 * Math.cos((2 * Math.PI * n) / (size - 1)));
    }
  }
  return response;
}
