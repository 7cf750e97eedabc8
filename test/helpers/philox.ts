// An independent reference of the noise stream (lib/kernels/random.ts): Philox4x32-10 written with
// BigInt arithmetic straight from the Random123 definition, and Box-Muller in float64 with the
// platform's Math.log/cos/sin (the native code uses its own float32 polynomials, so agreement
// here checks those too, to within their accuracy).
const MASK = 0xffffffffn;
const MUL0 = 0xd2511f53n;
const MUL1 = 0xcd9e8d57n;
const WEYL0 = 0x9e3779b9n;
const WEYL1 = 0xbb67ae85n;

/** Philox4x32 with 10 rounds: four 32-bit counter words under a two-word key. */
export function philox4x32x10(counter: readonly [bigint, bigint, bigint, bigint], key: readonly [bigint, bigint]): [bigint, bigint, bigint, bigint] {
  let [c0, c1, c2, c3] = counter;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + WEYL0) & MASK;
      k1 = (k1 + WEYL1) & MASK;
    }
    const p0 = MUL0 * c0;
    const p1 = MUL1 * c2;
    [c0, c1, c2, c3] = [((p1 >> 32n) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32n) ^ c3 ^ k1) & MASK, p0 & MASK];
  }
  return [c0, c1, c2, c3];
}

/** The four 32-bit words of stream block `block` (element index div 4) of `seed`. */
export function streamWords(seed: bigint, block: bigint): [number, number, number, number] {
  const words = philox4x32x10([block & MASK, block >> 32n, 0n, 0n], [seed & MASK, seed >> 32n]);
  return words.map(Number) as [number, number, number, number];
}

/** Box-Muller of one word pair in float64: [√(-2 ln u1)·cos 2πu2, √(-2 ln u1)·sin 2πu2]. */
export function boxMuller(a: number, b: number): [number, number] {
  const u1 = (Math.floor(a / 256) + 1) / 2 ** 24;
  const u2 = Math.floor(b / 256) / 2 ** 24;
  const radius = Math.sqrt(-2 * Math.log(u1));
  return [radius * Math.cos(2 * Math.PI * u2), radius * Math.sin(2 * Math.PI * u2)];
}

/** Elements [offset, offset + count) of the standard-normal stream of `seed`, in float64. */
export function normalStream(seed: bigint, offset: number, count: number): Float64Array {
  const out = new Float64Array(count);
  let cachedBlock = -1;
  let values: number[] = [];
  for (let i = 0; i < count; i++) {
    const element = offset + i;
    const block = Math.floor(element / 4);
    if (block !== cachedBlock) {
      const w = streamWords(seed, BigInt(block));
      values = [...boxMuller(w[0], w[1]), ...boxMuller(w[2], w[3])];
      cachedBlock = block;
    }
    out[i] = values[element % 4]!;
  }
  return out;
}
