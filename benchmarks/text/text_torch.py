#!/usr/bin/env python3
"""PyTorch baselines for benchmarks/text/encode.mjs, run in the same command on the same GPU.

Written from the spec (reference/stepvideo-spec.md §5), with the same shapes and the same layer
sharing as encode.mjs (every layer uses one set of random weights: the kernels and their memory
traffic are those of distinct weights, since one layer's weights far exceed the L2 cache):

  step-llm   Step1Model in bf16: RMSNorm (f32 statistics), fused wqkv split as [Q ; (k|v) per group],
             GQA by repeat_interleave, causal ALiBi-sqrt as an explicit float bias passed to SDPA
             (attn_mask), SwiGLU, no final norm. 2 prompts x 320 tokens.
  clip       BERT (Hunyuan-CLIP) in f32 (as the official server runs it) and in bf16: embeddings +
             LayerNorm, SDPA with a boolean key-padding mask, GELU (erf). 2 prompts x 77 tokens.
  attention  the attention alone on the same shapes: ALiBi-sqrt causal GQA with the explicit bias,
             and the CLIP padding-masked attention.

    python3 text_torch.py '<config json>'     (encode.mjs builds the config)

One JSON line per measurement: {"name", "ms", ...}. CUDA events, warm-up, median.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F
import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from torch_timing import cuda_median_ms  # noqa: E402  (benchmarks/lib)


def alibi_slopes(heads):
    n = 2 ** int(math.floor(math.log2(heads)))
    slopes = [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]
    slopes += [2.0 ** (-4.0 * (2 * k + 1) / n) for k in range(heads - n)]
    return torch.tensor(slopes)


def alibi_bias(heads, length, dtype, dev):
    """[1, H, S, S]: -slope_h * sqrt(i - j) for j <= i, -inf above the diagonal."""
    i = torch.arange(length, device=dev)[:, None]
    j = torch.arange(length, device=dev)[None, :]
    bias = -alibi_slopes(heads).to(dev)[:, None, None] * (i - j).clamp(min=0).float().sqrt()
    return bias.masked_fill(j > i, float("-inf")).to(dtype)[None]


def uniform(shape, fan_in, dtype, dev):
    return ((torch.rand(shape, device=dev, dtype=torch.float32) * 2 - 1) * math.sqrt(3 / fan_in)).to(dtype)


def rms_norm(x, weight, eps):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


def step_llm(cfg, dev):
    D, H, G, L, FF, S, B = cfg["hidden"], cfg["heads"], cfg["groups"], cfg["layers"], cfg["ffn"], cfg["tokens"], cfg["batch"]
    hd = D // H
    dt = torch.bfloat16
    table = uniform((cfg["vocab"], D), D, dt, dev)
    w = {
        "attention_norm": torch.ones(D, device=dev, dtype=dt),
        "ffn_norm": torch.ones(D, device=dev, dtype=dt),
        "wqkv": uniform((D + 2 * hd * G, D), D, dt, dev),
        "wo": uniform((D, D), D, dt, dev),
        "w1": uniform((2 * FF, D), D, dt, dev),
        "w2": uniform((D, FF), FF, dt, dev),
    }
    ids = torch.randint(0, cfg["vocab"], (B, S), device=dev)
    bias = alibi_bias(H, S, dt, dev)

    def layer(x):
        qkv = F.linear(rms_norm(x, w["attention_norm"], 1e-5), w["wqkv"])
        q, kv = qkv.split((D, 2 * hd * G), dim=-1)
        q = q.view(B, S, H, hd).transpose(1, 2)
        k, v = kv.view(B, S, G, 2 * hd).chunk(2, dim=-1)
        k = k.transpose(1, 2).repeat_interleave(H // G, dim=1)
        v = v.transpose(1, 2).repeat_interleave(H // G, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        h = x + F.linear(o.transpose(1, 2).reshape(B, S, D), w["wo"])
        u1, u2 = F.linear(rms_norm(h, w["ffn_norm"], 1e-5), w["w1"]).chunk(2, dim=-1)
        return h + F.linear(F.silu(u1) * u2, w["w2"])

    def encode():
        x = F.embedding(ids, table)
        for _ in range(L):
            x = layer(x)
        return x

    with torch.no_grad():
        ms = cuda_median_ms(encode, cfg["iterations"])
    del w, table
    torch.cuda.empty_cache()
    return ms


def clip(cfg, dtype, dev):
    D, H, L, I, S, B = cfg["hidden"], cfg["heads"], cfg["layers"], cfg["intermediate"], cfg["tokens"], cfg["batch"]
    hd = D // H
    words = uniform((cfg["vocab"], D), D, dtype, dev)
    positions = uniform((cfg["positions"], D), D, dtype, dev)
    token_type = uniform((2, D), D, dtype, dev)
    ones, zeros = torch.ones(D, device=dev, dtype=dtype), torch.zeros(D, device=dev, dtype=dtype)
    w = {name: uniform(shape, shape[1], dtype, dev) for name, shape in
         {"q": (D, D), "k": (D, D), "v": (D, D), "o": (D, D), "i": (I, D), "out": (D, I)}.items()}
    b = {name: torch.zeros(shape[0], device=dev, dtype=dtype) for name, shape in
         {"q": (D,), "k": (D,), "v": (D,), "o": (D,), "i": (I,), "out": (D,)}.items()}
    ids = torch.randint(0, cfg["vocab"], (B, S), device=dev)
    valid = torch.tensor(cfg["valid"], device=dev)
    key_mask = (torch.arange(S, device=dev)[None, :] < valid[:, None])[:, None, None, :]  # [B, 1, 1, S]

    def heads(x, name):
        return F.linear(x, w[name], b[name]).view(B, S, H, hd).transpose(1, 2)

    def layer(x):
        o = F.scaled_dot_product_attention(heads(x, "q"), heads(x, "k"), heads(x, "v"), attn_mask=key_mask)
        h = F.layer_norm(x + F.linear(o.transpose(1, 2).reshape(B, S, D), w["o"], b["o"]), (D,), ones, zeros, 1e-12)
        return F.layer_norm(h + F.linear(F.gelu(F.linear(h, w["i"], b["i"])), w["out"], b["out"]), (D,), ones, zeros, 1e-12)

    def encode():
        x = F.embedding(ids, words) + token_type[0] + positions[:S]
        x = F.layer_norm(x, (D,), ones, zeros, 1e-12)
        for _ in range(L):
            x = layer(x)
        return x

    with torch.no_grad():
        ms = cuda_median_ms(encode, cfg["iterations"])
    del w, b, words, positions
    torch.cuda.empty_cache()
    return ms


def attention(shape, dev):
    B, H, Hkv, S, D = shape["B"], shape["H"], shape["Hkv"], shape["S"], shape["D"]
    dt = torch.bfloat16
    q = torch.randn(B, H, S, D, device=dev, dtype=dt)
    k = torch.randn(B, Hkv, S, D, device=dev, dtype=dt)
    v = torch.randn(B, Hkv, S, D, device=dev, dtype=dt)
    if shape["alibi"]:
        mask = alibi_bias(H, S, dt, dev)
    else:
        mask = (torch.arange(S, device=dev)[None, :] < torch.tensor(shape["kvLen"], device=dev)[:, None])[:, None, None, :]

    def run():
        # GQA expanded inside the timed region, as the model must do it on every call.
        kk = k.repeat_interleave(H // Hkv, dim=1) if Hkv != H else k
        vv = v.repeat_interleave(H // Hkv, dim=1) if Hkv != H else v
        return F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)

    with torch.no_grad():
        return cuda_median_ms(run, shape["iterations"], warmup=3)


def main():
    cfg = json.loads(sys.argv[1])
    dev = torch.device("cuda")
    torch.manual_seed(0)
    print(json.dumps({"name": "environment", "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
                      "tf32": torch.backends.cuda.matmul.allow_tf32}), flush=True)
    print(json.dumps({"name": "step-llm", "ms": round(step_llm(cfg["llm"], dev), 3)}), flush=True)
    for dtype_name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        print(json.dumps({"name": f"clip-{dtype_name}", "ms": round(clip(cfg["clip"], dtype, dev), 3)}), flush=True)
    for shape in cfg["attention"]:
        print(json.dumps({"name": f"attention-{shape['name']}", "ms": round(attention(shape, dev), 4)}), flush=True)


if __name__ == "__main__":
    main()
