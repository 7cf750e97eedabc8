"""Timing for the PyTorch baselines: CUDA events around each run after a warm-up, median in ms.

The Node benchmarks (benchmarks/lib/harness.mjs) time our kernels the same way: warm-up, then the
median of synchronised runs, so the ratios compare like with like.
"""
import torch


def cuda_median_ms(fn, iterations, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
    samples.sort()
    return samples[len(samples) // 2]
