"""torch SDPA baseline for benchmarks/attention/attention.mjs, run in the same command.

Times torch.nn.functional.scaled_dot_product_attention on the shapes it is given (a JSON list, as
attention.mjs builds it), bf16, with each backend forced through torch.nn.attention.sdpa_kernel:
cuDNN, flash (FlashAttention-2) and memory-efficient. CUDA events, warm-up, median. One JSON line
per (shape, backend); a backend that refuses a shape (head dim 512, a float bias) reports why.
ALiBi-sqrt shapes pass the bias as a float mask with -inf above the diagonal (flash and cuDNN
refuse it; memory-efficient takes it). GQA is expanded with repeat_interleave (what the model means).
Layout note: torch returns [B, H, N, D]; ours writes [B, N, H, D] for the output projection.
    python3 sdpa_baseline.py '<shapes json>' [iterations] [backends, e.g. cudnn,flash (default: all three)]
"""
import json
import math
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from torch_timing import cuda_median_ms  # noqa: E402  (benchmarks/lib)

BACKENDS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def alibi_slopes(heads):
    n = 2 ** int(math.floor(math.log2(heads)))
    slopes = [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]
    slopes += [2.0 ** (-4.0 * (2 * k + 1) / n) for k in range(heads - n)]
    return torch.tensor(slopes)


def visible_pairs(s):
    if not s["causal"]:
        return s["Nq"] * s["Nk"]
    offset = s["Nk"] - s["Nq"]
    return sum(min(s["Nk"], i + offset + 1) for i in range(s["Nq"]))


def main():
    shapes = json.loads(sys.argv[1])
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    wanted = sys.argv[3].split(",") if len(sys.argv) > 3 else list(BACKENDS)
    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(json.dumps({"name": "environment", "backend": "torch", "torch": torch.__version__,
                      "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name()}), flush=True)
    for s in shapes:
        B, H, Hkv, Nq, Nk, D = s["B"], s["H"], s["Hkv"], s["Nq"], s["Nk"], s["D"]
        q = torch.randn(B, H, Nq, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(B, Hkv, Nk, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(B, Hkv, Nk, D, device=dev, dtype=torch.bfloat16)
        if Hkv != H:
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        mask, causal = None, s["causal"]
        if s["alibi"]:
            i = torch.arange(Nq, device=dev)[:, None] + (Nk - Nq)
            j = torch.arange(Nk, device=dev)[None, :]
            distance = (i - j).clamp(min=0).float().sqrt()
            bias = -alibi_slopes(H).to(dev)[:, None, None] * distance
            mask = bias.masked_fill(j > i, float("-inf")).to(torch.bfloat16)[None]
            causal = False
        flops = 4 * B * H * visible_pairs(s) * D
        for name, backend in ((n, b) for n, b in BACKENDS.items() if n in wanted):
            row = {"name": s["name"], "backend": name}
            try:
                with sdpa_kernel(backend):
                    fn = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
                    ms = cuda_median_ms(fn, iterations, warmup=1)
                row.update(ms=round(ms, 3), tflops=round(flops / (ms * 1e-3) / 1e12, 1))
            except RuntimeError as error:  # the backend does not take this shape or mask
                row["unsupported"] = str(error).splitlines()[0][:300]
            print(json.dumps(row), flush=True)
        del q, k, v, mask
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
