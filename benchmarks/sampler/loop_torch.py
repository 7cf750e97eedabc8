#!/usr/bin/env python3
"""The official sampling loop's own work per step in PyTorch (stepvideo/diffusion/video_pipeline.py and
scheduler.py, spec section 4), everything but the DiT: the baseline that benchmarks/sampler/loop.mjs
compares against, in the same run on the same GPU.

Per step, at 544x992x204 (latents [1, 36, 64, 34, 62]) with CFG:
    latent_model_input = torch.cat([latents] * 2).to(bf16)           # the DiT input
    noise_pred_text, noise_pred_uncond = noise_pred.chunk(2)          # noise_pred: the DiT's bf16 output
    noise_pred = noise_pred_uncond + g * (noise_pred_text - noise_pred_uncond)   # in bf16
    latents = latents.float() + noise_pred.float() * dt               # scheduler.step, f32
and once per video the initial noise, torch.randn(..., dtype=bf16, device='cuda').

    python3 benchmarks/sampler/loop_torch.py [--runs 50] [--result FILE]

Prints one JSON line per measurement and writes them all to --result for loop.mjs.
"""
import argparse
import json

import torch
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from torch_timing import cuda_median_ms  # noqa: E402  (benchmarks/lib)

SHAPE = (1, 36, 64, 34, 62)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=50)
    parser.add_argument('--result', default=None)
    args = parser.parse_args()
    device = torch.device('cuda')
    generator = torch.Generator(device=device).manual_seed(1234)
    latents = torch.randn(SHAPE, generator=generator, device=device, dtype=torch.float32)
    noise_pred = torch.randn((2,) + SHAPE[1:], generator=generator, device=device, dtype=torch.bfloat16)
    sigmas = torch.linspace(1, 0, 51)
    dt = (sigmas[1] - sigmas[0]).to(device)
    g = 9.0

    def step():
        nonlocal latents
        latent_model_input = torch.cat([latents] * 2).to(torch.bfloat16)
        text, uncond = noise_pred.chunk(2)
        guided = uncond + g * (text - uncond)
        latents = latents.to(torch.float32) + guided.to(torch.float32) * dt
        return latent_model_input

    def noise():
        torch.randn(SHAPE, generator=generator, device=device, dtype=torch.bfloat16)

    results = {
        'stepMs': cuda_median_ms(step, args.runs, warmup=5),
        'noiseMs': cuda_median_ms(noise, args.runs, warmup=5),
        'torch': torch.__version__,
        'gpu': torch.cuda.get_device_name(device),
    }
    print(json.dumps({'benchmark': 'sampler loop step (torch baseline)', **results}))
    if args.result:
        with open(args.result, 'w') as f:
            json.dump(results, f)


if __name__ == '__main__':
    main()
