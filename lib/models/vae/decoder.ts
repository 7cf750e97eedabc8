// VideoDecoder, version 2 (spec §3.4), for one chunk of one batch item: latents [3, h, w, z]
// (channels last) → frames [17, 16h, 16w, 3].
import { conv3d } from '../../kernels/conv.js';
import { upsampleResidual } from '../../kernels/vae.js';
import type { Tensor } from '../../tensor.js';
import { type BlockContext, checkpoint, conv, midBlock, norm, normConv, pixelShuffle3d, repeatChannels, resBlock } from './blocks.js';
import { DECODER_3D_UP_LEVELS, DECODER_DROPPED_FRAMES, type VaeConfig, patchChannels } from './config.js';

/**
 * Upsample3D: nearest ×2 in T, H and W, then Res3DBlockUpsample with its double residual:
 * SiLU(GN2(conv2(SiLU(GN1(conv1(up(x)))))) + up(x)) + up(x). up(x) is never materialised: conv1
 * reads x through the upsampling, the residual kernel too. Consumes x.
 */
function upsample3d(ctx: BlockContext, x: Tensor, prefix: string): Tensor {
  let h: Tensor | undefined;
  try {
    h = conv(ctx, x, `${prefix}.conv1.conv`, { upsample: { time: 2, space: 2 } });  // conv1(up(x))
    h = replaced(h, normConv(ctx, h, `${prefix}.norm1`, `${prefix}.conv2.conv`));    // conv2(zp(SiLU(GN1(·))))
    h = replaced(h, norm(ctx, h, `${prefix}.norm2`, false));                          // GN2(·)
    return upsampleResidual(h, x, { time: 2, space: 2, inPlace: true });              // SiLU(· + up(x)) + up(x)
  } catch (error) {
    h?.dispose();
    throw error;
  } finally {
    x.dispose();
  }
}

/** Frees `old` (just consumed by the computation of `next`) and returns `next`. */
function replaced(old: Tensor, next: Tensor): Tensor {
  old.dispose();
  return next;
}

/** Upsample2D: per frame nearest ×2 in H and W (resolved on read), then a padded 3×3 conv. Consumes x. */
function upsample2d(ctx: BlockContext, x: Tensor, prefix: string): Tensor {
  try {
    return conv3d(x, ctx.weight(`${prefix}.conv.weight`), {
      bias: ctx.weight(`${prefix}.conv.bias`),
      padding: { top: 1, bottom: 1, left: 1, right: 1 },
      upsample: { space: 2 },
    });
  } finally {
    x.dispose();
  }
}

/** Decodes one chunk; consumes z. */
export async function decodeChunk(ctx: BlockContext, config: VaeConfig, z: Tensor): Promise<Tensor> {
  const { ch, chMult, blocksPerLevel } = config.decoder;
  const channels = patchChannels(config);
  const width = ch * chMult[chMult.length - 1]!;
  let h: Tensor;
  // conv_in + the channel-duplicating shortcut (factor 1: each latent channel repeated, no shuffle).
  {
    using zz = z;
    using duplicated = repeatChannels(zz, channels / config.zChannels);
    h = conv(ctx, zz, 'decoder.conv_in.conv', { residual: duplicated });
  }
  // conv_unpatchify + its shortcut (channels repeated, then the same shuffle). The shuffle is a
  // permutation, so shuffle(conv(h)) + shuffle(repeat(h)) = shuffle(conv(h) + repeat(h)): the
  // shortcut is the conv's fused residual and one shuffle (with the first-frame drop) follows.
  {
    using input = h;
    using repeated = repeatChannels(input, (width * 8) / channels);
    using unshuffled = conv(ctx, input, 'decoder.conv_unpatchify.conv.conv', { residual: repeated });
    h = pixelShuffle3d(unshuffled);
  }
  // Blocks consume their input, so h is always the one live activation: freed here on an error or abort.
  try {
    await checkpoint(ctx, 'VAE decoding');
    h = await midBlock(ctx, h, 'decoder.mid');
    await checkpoint(ctx, 'VAE decoding');
    for (let level = chMult.length - 1; level >= 0; level--) {
      for (let b = 0; b < blocksPerLevel; b++) {
        h = resBlock(ctx, h, `decoder.up.${level}.block.${b}`);
        await checkpoint(ctx, 'VAE decoding');
      }
      if (level === 0) continue;
      h = DECODER_3D_UP_LEVELS.includes(level)
        ? upsample3d(ctx, h, `decoder.up.${level}.upsample.conv3d`)
        : upsample2d(ctx, h, `decoder.up.${level}.upsample`);
      await checkpoint(ctx, 'VAE decoding');
    }
  } catch (error) {
    h.dispose();  // disposing twice is harmless
    throw error;
  }
  // norm_out + SiLU, two zero frames, conv_out; then the first temporal_downsample − 1 frames go.
  using last = h;
  using rgb = normConv(ctx, last, 'decoder.norm_out', 'decoder.conv_out.conv');
  return rgb.narrow(DECODER_DROPPED_FRAMES, rgb.shape[0]! - DECODER_DROPPED_FRAMES);
}
