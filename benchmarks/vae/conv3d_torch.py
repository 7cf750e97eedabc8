#!/usr/bin/env python3
"""The PyTorch baseline of benchmarks/vae/conv3d.mjs: torch.nn.functional.conv3d (cuDNN) in bf16 on
channels_last_3d tensors, at the VAE decoder's real shapes (benchmarks/vae/shapes.json), in the same
run on the same GPU.

The baseline is given its best case: the input is already upsampled and causally padded (the two zero
frames in front; spatial padding through conv3d's own padding), outside the timed region. Our kernel
does both on read, inside its timed region.

    python3 benchmarks/vae/conv3d_torch.py [--iterations 10] [--result FILE]

Prints one JSON line per shape and writes them all (a JSON list) to --result for conv3d.mjs.
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from torch_timing import cuda_median_ms  # noqa: E402  (benchmarks/lib)

HERE = os.path.dirname(os.path.abspath(__file__))
H200_BF16_GEMM = 700e12


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--result", default=None)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    shapes = json.load(open(os.path.join(HERE, "shapes.json")))["shapes"]
    results = []
    for shape in shapes:
        t, h, w, cin = shape["input"]
        kt, kh, kw = shape["kernel"]
        front, ph, pw = shape["padding"]
        ut, us = shape["upsample"]
        cout = shape["cout"]
        # [1, Cin, T', H', W'] channels_last_3d: upsampled, front-padded in time (spatial pad by conv3d).
        x = torch.randn(1, cin, front + t * ut, h * us, w * us, device="cuda", dtype=torch.bfloat16)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        weight = (torch.randn(cout, cin, kt, kh, kw, device="cuda", dtype=torch.bfloat16) / (cin * kt * kh * kw) ** 0.5)
        weight = weight.contiguous(memory_format=torch.channels_last_3d)
        bias = torch.zeros(cout, device="cuda", dtype=torch.bfloat16)

        def run():
            return F.conv3d(x, weight, bias, padding=(0, ph, pw))

        out_shape = run().shape
        ms = cuda_median_ms(run, args.iterations, warmup=3)
        outputs = out_shape[2] * out_shape[3] * out_shape[4]
        flops = 2 * outputs * cout * cin * kt * kh * kw
        result = {
            "benchmark": "vae-conv3d-torch",
            "shape": shape["name"],
            "torchMs": round(ms, 4),
            "torchTflops": round(flops / (ms / 1e3) / 1e12, 1),
            "flops": flops,
            "floorMs": round(flops / H200_BF16_GEMM * 1e3, 4),
            "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
        del x, weight, bias
        torch.cuda.empty_cache()
    if args.result:
        with open(args.result, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
