// Types for fft.js 4 (indutny/fft.js, MIT): a radix-4 FFT of a power-of-two size, on interleaved
// complex arrays (re, im, re, im, …). The package ships none.
declare module 'fft.js' {
  export default class FFT {
    constructor(size: number);
    readonly size: number;
    createComplexArray(): number[];
    /** The spectrum of interleaved complex `data` into `out` (not the same array). */
    transform(out: ArrayLike<number> & { [i: number]: number }, data: ArrayLike<number>): void;
    /** The spectrum of real `data`: only the left half of `out` is filled (see completeSpectrum). */
    realTransform(out: ArrayLike<number> & { [i: number]: number }, data: ArrayLike<number>): void;
    completeSpectrum(spectrum: ArrayLike<number> & { [i: number]: number }): void;
    /** The inverse transform, divided by the size. */
    inverseTransform(out: ArrayLike<number> & { [i: number]: number }, data: ArrayLike<number>): void;
  }
}
