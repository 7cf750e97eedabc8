// Video quality against a reference video: PSNR and SSIM of decoded RGB frames (uint8), as the
// step-caching papers report them. SSIM on luma (BT.601) over 8x8 windows with stride 4 and the
// usual constants (Wang et al. 2004: K1 0.01, K2 0.03, L 255), averaged over windows and frames.

/** PSNR in dB of `a` against `b` (same length, uint8); Infinity when equal. */
export function psnr(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  const mse = sum / a.length;
  return mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / mse);
}

function luma(rgb, pixels) {
  const y = new Float64Array(pixels);
  for (let p = 0; p < pixels; p++) y[p] = 0.299 * rgb[3 * p] + 0.587 * rgb[3 * p + 1] + 0.114 * rgb[3 * p + 2];
  return y;
}

/** Mean SSIM of frames `a` against `b`: count frames of width x height, RGB interleaved. */
export function ssim(a, b, { width, height, count }) {
  const C1 = (0.01 * 255) ** 2;
  const C2 = (0.03 * 255) ** 2;
  const win = Math.min(8, width, height);
  const stride = Math.max(1, win >> 1);
  const pixels = width * height;
  let total = 0;
  let windows = 0;
  for (let f = 0; f < count; f++) {
    const ya = luma(a.subarray(f * pixels * 3, (f + 1) * pixels * 3), pixels);
    const yb = luma(b.subarray(f * pixels * 3, (f + 1) * pixels * 3), pixels);
    for (let y0 = 0; y0 + win <= height; y0 += stride) {
      for (let x0 = 0; x0 + win <= width; x0 += stride) {
        let ma = 0, mb = 0;
        for (let y = y0; y < y0 + win; y++) for (let x = x0; x < x0 + win; x++) { ma += ya[y * width + x]; mb += yb[y * width + x]; }
        const n = win * win;
        ma /= n;
        mb /= n;
        let va = 0, vb = 0, cov = 0;
        for (let y = y0; y < y0 + win; y++) {
          for (let x = x0; x < x0 + win; x++) {
            const da = ya[y * width + x] - ma;
            const db = yb[y * width + x] - mb;
            va += da * da;
            vb += db * db;
            cov += da * db;
          }
        }
        va /= n - 1;
        vb /= n - 1;
        cov /= n - 1;
        total += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
        windows++;
      }
    }
  }
  return total / windows;
}
