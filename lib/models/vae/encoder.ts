// VideoEncoder, version 2 (spec §3.3), for one chunk of one batch item: frames [17, H, W, 3]
// (channels last) → moments [3, H/16, W/16, 2z] (mean channels, then logvar), before any clamping.
import { conv3d } from '../../kernels/conv.js';
import * as ops from '../../ops.js';
import type { Tensor } from '../../tensor.js';
import { type BlockContext, averageChannels, checkpoint, conv, midBlock, norm, pixelUnshuffle3d, resBlock } from './blocks.js';
import { ENCODER_3D_DOWN_LEVELS, type VaeConfig, patchChannels } from './config.js';

/** Downsample2D: per frame, zero pad right and bottom by one, then a 3×3 conv with stride 2. Consumes x. */
function downsample2d(ctx: BlockContext, x: Tensor, prefix: string): Tensor {
  try {
    return conv3d(x, ctx.weight(`${prefix}.conv.weight`), {
      bias: ctx.weight(`${prefix}.conv.bias`),
      stride: [1, 2, 2],
      padding: { bottom: 1, right: 1 },
    });
  } finally {
    x.dispose();
  }
}

/** Downsample3D: causal conv, stride 2 in T, H and W. Consumes x. */
function downsample3d(ctx: BlockContext, x: Tensor, prefix: string): Tensor {
  try {
    return conv(ctx, x, `${prefix}.conv.conv`, { stride: 2 });
  } finally {
    x.dispose();
  }
}

/** Encodes one 17-frame chunk; consumes the frames. */
export async function encodeChunk(ctx: BlockContext, config: VaeConfig, frames: Tensor): Promise<Tensor> {
  const { chMult, blocksPerLevel } = config.encoder;
  let h: Tensor;
  {
    using x = frames;
    h = conv(ctx, x, 'encoder.conv_in.conv');
  }
  // Blocks consume their input, so h is always the one live activation: freed here on an error or abort.
  try {
    for (let level = 0; level < chMult.length; level++) {
      for (let b = 0; b < blocksPerLevel; b++) {
        h = resBlock(ctx, h, `encoder.down.${level}.block.${b}`);
        await checkpoint(ctx, 'VAE encoding');
      }
      if (level === chMult.length - 1) continue;
      const prefix = `encoder.down.${level}.downsample`;
      h = ENCODER_3D_DOWN_LEVELS.includes(level) ? downsample3d(ctx, h, prefix) : downsample2d(ctx, h, prefix);
      await checkpoint(ctx, 'VAE encoding');
    }
    h = await midBlock(ctx, h, 'encoder.mid');
    await checkpoint(ctx, 'VAE encoding');
    // v2 head: norm_out + SiLU (no zero frames), then
    //   h = unshuffle(conv_patchify(h)) + average_groups(unshuffle(h))
    //   out = conv_out(h) + average_groups(h)
    const channels = patchChannels(config);
    using normalised = norm(ctx, h, 'encoder.norm_out', true);
    h.dispose();
    let patched: Tensor;
    {
      using blocks = pixelUnshuffle3d(normalised);
      using shortcut = averageChannels(blocks, (normalised.shape[3]! * 8) / channels);
      using convolved = conv(ctx, normalised, 'encoder.conv_patchify.conv.conv');
      using unshuffled = pixelUnshuffle3d(convolved);
      patched = ops.add(unshuffled, shortcut);
    }
    using p = patched;
    using outShortcut = averageChannels(p, channels / (2 * config.zChannels));
    return conv(ctx, p, 'encoder.conv_out.conv', { residual: outShortcut });
  } catch (error) {
    h.dispose();  // disposing twice is harmless
    throw error;
  }
}
