#!/usr/bin/env python3
"""One Step-Video DiT block in PyTorch, written from the spec (reference/stepvideo-spec.md §2.3-2.4):
the baseline that benchmarks/dit/block.mjs compares against, in the same run on the same GPU.

bf16 weights and activations, torch SDPA for both attentions (self: no mask; cross: a [B, 1, 1, L]
boolean prefix mask, never the [B, 48, N, L] tensor), the official bf16 RoPE tables (angles
rounded to bf16), QK-Norm in f32, LayerNorm+modulate, GELU-tanh FFN, gated residuals. Like the
official code, the cross-attention K/V projection runs inside the block.

Shapes: 544x992x204 with CFG: batch 2, N = 36*34*62 = 75,888 tokens, D = 6144, 48 heads x 128,
397 text tokens (77 CLIP + 320 LLM; the second batch item keeps 77 + 120).

    python3 benchmarks/dit/block_torch.py [--runs 5] [--result FILE]

Prints one JSON line (block ms, TFLOP/s, peak memory) and writes it to --result for block.mjs.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F

B, FR, HL, WL = 2, 36, 34, 62
N = FR * HL * WL
D, HEADS, DH = 6144, 48, 128
CLIP, LLM = 77, 320
VALID = [CLIP + 320, CLIP + 120]
SPLIT = [64, 32, 32]
H200_BF16_GEMM, H200_SDPA = 700e12, 610e12


def rms_norm(x, weight, eps=1e-6):
    # Official RMSNorm: f32 statistics, normalised value back in bf16, then the weight.
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


def rope_tables(device):
    """Per axis (t, h, w): cos/sin [positions, width], the official bf16 construction."""
    tables = []
    for positions, width in zip((FR, HL, WL), SPLIT):
        inv_freq = 1.0 / (10000 ** (torch.arange(0, width, 2, device=device).float() / width))
        angles = torch.outer(torch.arange(positions, device=device, dtype=torch.float32), inv_freq).to(torch.bfloat16)
        angles = torch.cat((angles, angles), dim=-1)
        tables.append((angles.cos(), angles.sin()))
    return tables


def apply_rope(x, tables, positions):
    """x [B, N, H, Dh]; rotate-half inside each slice of SPLIT."""
    out = []
    for axis, (part, (cos, sin)) in enumerate(zip(x.split(SPLIT, dim=-1), tables)):
        c = cos[positions[:, axis]][None, :, None, :]
        s = sin[positions[:, axis]][None, :, None, :]
        first, second = part.chunk(2, dim=-1)
        out.append(part * c + torch.cat((-second, first), dim=-1) * s)
    return torch.cat(out, dim=-1)


def block(x, context, key_mask, modulation, w, tables, positions):
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (w["scale_shift_table"][None] + modulation).chunk(6, dim=1)
    a = F.layer_norm(x, (D,), w["norm1.weight"], w["norm1.bias"], eps=1e-5) * (1 + scale_msa) + shift_msa
    q, k, v = F.linear(a, w["attn1.wqkv"]).view(B, N, HEADS, 3 * DH).split(DH, dim=-1)
    q = apply_rope(rms_norm(q, w["attn1.q_norm"]), tables, positions)
    k = apply_rope(rms_norm(k, w["attn1.k_norm"]), tables, positions)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    x = x + gate_msa * F.linear(o.transpose(1, 2).reshape(B, N, D), w["attn1.wo"])

    q = rms_norm(F.linear(x, w["attn2.wq"]).view(B, N, HEADS, DH), w["attn2.q_norm"])
    k, v = F.linear(context, w["attn2.wkv"]).view(B, -1, HEADS, 2 * DH).split(DH, dim=-1)
    k = rms_norm(k, w["attn2.k_norm"])
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=key_mask)
    x = x + F.linear(o.transpose(1, 2).reshape(B, N, D), w["attn2.wo"])

    b = F.layer_norm(x, (D,), w["norm2.weight"], w["norm2.bias"], eps=1e-5) * (1 + scale_mlp) + shift_mlp
    return x + gate_mlp * F.linear(F.gelu(F.linear(b, w["ff.0"]), approximate="tanh"), w["ff.2"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--result", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("block_torch.py: no CUDA device", file=sys.stderr)
        sys.exit(1)
    device = torch.device("cuda")
    torch.manual_seed(0)
    bf16 = torch.bfloat16

    def randn(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, device=device, dtype=torch.float32) * std + mean).to(bf16)

    s = D ** -0.5
    w = {
        "scale_shift_table": randn(6, D, std=s),
        "norm1.weight": randn(D, std=0.1, mean=1.0), "norm1.bias": randn(D, std=0.02),
        "norm2.weight": randn(D, std=0.1, mean=1.0), "norm2.bias": randn(D, std=0.02),
        "attn1.wqkv": randn(3 * D, D, std=s), "attn1.wo": randn(D, D, std=s),
        "attn1.q_norm": randn(DH, std=0.1, mean=1.0), "attn1.k_norm": randn(DH, std=0.1, mean=1.0),
        "attn2.wq": randn(D, D, std=s), "attn2.wkv": randn(2 * D, D, std=s), "attn2.wo": randn(D, D, std=s),
        "attn2.q_norm": randn(DH, std=0.1, mean=1.0), "attn2.k_norm": randn(DH, std=0.1, mean=1.0),
        "ff.0": randn(4 * D, D, std=s), "ff.2": randn(D, 4 * D, std=s),
    }
    x = randn(B, N, D)
    context = randn(B, max(VALID), D)
    key_mask = torch.zeros(B, 1, 1, max(VALID), dtype=torch.bool, device=device)
    for b, length in enumerate(VALID):
        key_mask[b, :, :, :length] = True
    modulation = randn(B, 6, D, std=0.1)
    tables = rope_tables(device)
    positions = torch.cartesian_prod(torch.arange(FR, device=device), torch.arange(HL, device=device), torch.arange(WL, device=device))

    with torch.inference_mode():
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for run in range(args.runs + 2):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = block(x, context, key_mask, modulation, w, tables, positions)
            end.record()
            torch.cuda.synchronize()
            del out
            if run >= 2:
                times.append(start.elapsed_time(end))
        peak = torch.cuda.max_memory_allocated() - baseline

    times.sort()
    block_ms = times[len(times) // 2]
    linear_flops = 2 * B * N * D * (3 * D + D + D + D + 2 * 4 * D) + 2 * B * max(VALID) * D * 2 * D
    attention_flops = 4 * B * N * N * D + 4 * B * N * max(VALID) * D
    floor_ms = (linear_flops / H200_BF16_GEMM + attention_flops / H200_SDPA) * 1e3
    result = {
        "benchmark": "dit-block-torch",
        "gpu": torch.cuda.get_device_name(),
        "frames": FR,
        "tokens": N,
        "torch": torch.__version__,
        "blockMs": round(block_ms, 2),
        "blockMsSamples": [round(t, 2) for t in times],
        "tflops": round((linear_flops + attention_flops) / (block_ms / 1e3) / 1e12, 1),
        "floorMs": round(floor_ms, 1),
        "ratioToFloor": round(block_ms / floor_ms, 3),
        "officialMeasuredMs": 836,
        "peakGB": round(peak / 1e9, 3),
        "sdpaBackends": {
            "flash": torch.backends.cuda.flash_sdp_enabled(),
            "cudnn": getattr(torch.backends.cuda, "cudnn_sdp_enabled", lambda: None)(),
            "memEfficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
        },
    }
    line = json.dumps(result)
    print(line)
    if args.result:
        with open(args.result, "w") as handle:
            handle.write(line)


if __name__ == "__main__":
    main()
