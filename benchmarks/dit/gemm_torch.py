#!/usr/bin/env python3
"""The baseline of benchmarks/dit/gemm.mjs: every DiT GEMM shape (gemm_shapes.json) through
torch.nn.functional.linear in bf16 (cuBLAS, the official code's GEMM), with GELU-tanh applied after
where the model fuses it; and the FP8 rowwise-scaled GEMM torch._scaled_mm (e4m3 weight with one
scale per output channel, e4m3 activations with one scale per row) alone and with the activation
quantization it needs. Timed with CUDA events, median of --iterations after --warmup.

    python3 benchmarks/dit/gemm_torch.py [--iterations 10] [--result FILE]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
from torch_timing import cuda_median_ms  # noqa: E402  (benchmarks/lib)

E4M3_MAX = 448.0


def timed(fn, warmup, iterations, reps):
    """Median ms per call; `reps` calls per timed sample for the small (microsecond) shapes."""

    def batch():
        for _ in range(reps):
            fn()

    return cuda_median_ms(batch, iterations, warmup) / reps


def quantize_rows(x):
    scale = x.abs().amax(dim=1, keepdim=True).float() / E4M3_MAX
    codes = (x.float() / scale.clamp(min=1e-30)).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return codes, scale


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--result", default=None)
    args = parser.parse_args()
    shapes = json.load(open(os.path.join(HERE, "gemm_shapes.json")))["shapes"]
    torch.manual_seed(0)
    results = []
    for shape in shapes:
        m, k, n = shape["m"], shape["k"], shape["n"]
        reps = 1 if m >= 4096 else 50
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k**0.5
        gelu = shape["epilogue"] == "gelu_tanh"
        bf16 = lambda: F.gelu(F.linear(x, w), approximate="tanh") if gelu else F.linear(x, w)
        bf16_ms = timed(bf16, args.warmup, args.iterations, reps)
        fp8_ms = fp8_total_ms = None
        try:
            w_codes, w_scale = quantize_rows(w)
            x_codes, x_scale = quantize_rows(x)
            scaled = lambda: torch._scaled_mm(x_codes, w_codes.t(), scale_a=x_scale, scale_b=w_scale.t(), out_dtype=torch.bfloat16)
            fp8_ms = timed(scaled, args.warmup, args.iterations, reps)

            def total():
                codes, scale = quantize_rows(x)
                y = torch._scaled_mm(codes, w_codes.t(), scale_a=scale, scale_b=w_scale.t(), out_dtype=torch.bfloat16)
                return F.gelu(y, approximate="tanh") if gelu else y

            fp8_total_ms = timed(total, args.warmup, args.iterations, reps)
            del w_codes, x_codes
        except (RuntimeError, AttributeError) as error:  # rowwise scaled_mm needs sm_89+ and a recent torch
            print(f"fp8 baseline unavailable for {shape['name']}: {error}", flush=True)
        flops = 2.0 * m * k * n
        results.append({
            "name": shape["name"], "m": m, "k": k, "n": n,
            "bf16Ms": bf16_ms, "bf16Tflops": flops / (bf16_ms / 1e3) / 1e12,
            "fp8Ms": fp8_ms, "fp8TotalMs": fp8_total_ms,
        })
        del x, w
        torch.cuda.empty_cache()
    line = {"benchmark": "dit-gemm-torch", "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "shapes": results}
    print(json.dumps(line), flush=True)
    if args.result:
        with open(args.result, "w") as f:
            json.dump(line, f)


if __name__ == "__main__":
    main()
