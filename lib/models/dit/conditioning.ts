// Host-side pieces of the DiT's conditioning that are tiny but decide numerics: the sinusoidal
// timestep embedding and the cross-attention key lengths. Each has two modes: 'exact' (what the
// float64 references compute) and 'bf16-official' (the official bf16 run's roundings, §2.5/§5.3).
import { roundBf16 } from '../../dtype.js';
import { StepVideoError } from '../../errors.js';

export type DiTNumerics = 'exact' | 'bf16-official';

/**
 * The value the timestep embedding sees for a timestep t in [0, 1): t·rescale as f32 (the official
 * code casts it with .float()), or in the official bf16 run bf16(bf16(t)·rescale) (t enters as
 * bf16 and the product is rounded to bf16 again).
 */
export function scaledTimestep(t: number, rescale: number, numerics: DiTNumerics): number {
  return numerics === 'exact' ? Math.fround(t * rescale) : roundBf16(Math.fround(roundBf16(t) * rescale));
}

/**
 * Sinusoidal timestep embedding [B, channels] in the official layout [cos(t'·f_k) | sin(t'·f_k)],
 * f_k = exp(-ln(10000)·k/half), k < half. The frequencies and arguments are f32 as torch computes
 * them in every precision; 'exact' then takes cos/sin exactly (rounded once to f32),
 * 'bf16-official' rounds them to bf16 (the module dtype of the official bf16 run).
 */
export function timestepSinusoid(timesteps: readonly number[], options: { channels: number; rescale: number; numerics: DiTNumerics }): Float32Array {
  const { channels, rescale, numerics } = options;
  const half = channels / 2;
  if (!Number.isInteger(half) || half <= 0) throw new StepVideoError('ERR_ARGUMENT', 'timestep channels must be even', { got: channels });
  const out = new Float32Array(timesteps.length * channels);
  const f32 = Math.fround;
  const round = numerics === 'exact' ? f32 : (x: number) => roundBf16(f32(x));
  const minusLogPeriod = f32(-Math.log(10000));
  timesteps.forEach((t, b) => {
    if (!Number.isFinite(t)) throw new StepVideoError('ERR_NOT_FINITE', 'timestep is not finite', { got: t, tensor: 'timestep' });
    const scaled = scaledTimestep(t, rescale, numerics);
    for (let k = 0; k < half; k++) {
      const frequency = f32(Math.exp(f32(f32(minusLogPeriod * k) / half)));
      const arg = f32(scaled * frequency);
      out[b * channels + k] = round(Math.cos(arg));
      out[b * channels + half + k] = round(Math.sin(arg));
    }
  });
  return out;
}

/**
 * Cross-attention key lengths from the host mask [B, L] (1 = keep; the CLIP positions first):
 * kv_len[b] = Σ mask[b], which the official bf16 run rounds to bf16 (the mask is cast before the
 * sum, so totals above 256 lose their low bit). Keys j < kv_len[b] are visible to item b.
 */
export function crossAttentionLengths(mask: ArrayLike<number>, batch: number, length: number, numerics: DiTNumerics): Int32Array {
  if (mask.length !== batch * length) {
    throw new StepVideoError('ERR_SHAPE', 'encoder attention mask has the wrong size', {
      expected: `[${batch}, ${length}] = ${batch * length} entries`,
      got: mask.length,
      tensor: 'encoder_attention_mask',
    });
  }
  const lengths = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    let count = 0;
    for (let j = 0; j < length; j++) {
      const keep = Number(mask[b * length + j]);
      if (keep !== 0 && keep !== 1) {
        throw new StepVideoError('ERR_ARGUMENT', 'encoder attention mask entries must be 0 or 1', { got: keep, tensor: 'encoder_attention_mask' });
      }
      // The official model only uses the count (a prefix of visible keys): a hole is a caller bug.
      if (keep === 1 && count !== j) {
        throw new StepVideoError('ERR_ARGUMENT', 'encoder attention mask must be ones followed by zeros (a prefix)', {
          got: `row ${b} has a 1 at position ${j} after a 0`,
          tensor: 'encoder_attention_mask',
        });
      }
      count += keep;
    }
    const rounded = numerics === 'exact' ? count : roundBf16(count);
    lengths[b] = Math.min(rounded, length);
  }
  return lengths;
}
