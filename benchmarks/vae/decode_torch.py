#!/usr/bin/env python3
"""The PyTorch baseline of benchmarks/vae/decode.mjs: the Step-Video VAE v2 decoder written from the
spec (reference/stepvideo-spec.md §3.2, §3.4, §3.5) with the released widths (z 64, ch 128, ch_mult
(1, 2, 4, 4), 3 resnet blocks per level) and random bf16 weights, decoding 17 and 204 frames at
544x992 chunk by chunk with the sequential boundary mix, as the official AutoencoderKL.decode does.

Written for speed the way the official code is: bf16, channels-last activations ([B, T, H, W, C]
storage, viewed as channels_last_3d for cuDNN's conv3d), GroupNorm per frame, causal zero frames
concatenated in front (official: F.pad / an empty tensor with zeros written), nearest interpolation
materialised, SDPA for the causal mid-block attention.

    python3 benchmarks/vae/decode_torch.py [--frames 17,204] [--runs 2] [--result FILE]

Prints one JSON line per frame count (ms, ms per chunk, peak GiB from torch.cuda.max_memory_allocated)
and writes them (a JSON list) to --result for decode.mjs.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

Z, CH, MULT, BLOCKS = 64, 128, (1, 2, 4, 4), 3
PATCH = 4 * Z * 8  # 2048
GROUPS = 32


class Weights:
    """Random weights in the module's shapes (uniform, std 1/sqrt(fan-in)), bf16, conv weights channels_last_3d."""

    def __init__(self):
        self.generator = torch.Generator(device="cuda").manual_seed(0)
        self.tensors = {}

    def conv(self, name, cout, cin, k):
        fan = cin * (k[0] * k[1] * k[2] if len(k) == 3 else k[0] * k[1])
        w = (torch.rand((cout, cin, *k), generator=self.generator, device="cuda") * 2 - 1) * (3 / fan) ** 0.5
        w = w.to(torch.bfloat16)
        if len(k) == 3:
            w = w.contiguous(memory_format=torch.channels_last_3d)
        else:
            w = w.contiguous(memory_format=torch.channels_last)
        b = ((torch.rand(cout, generator=self.generator, device="cuda") * 2 - 1) * 0.05).to(torch.bfloat16)
        self.tensors[name] = (w, b)

    def norm(self, name, c):
        w = (1 + (torch.rand(c, generator=self.generator, device="cuda") * 2 - 1) * 0.1).to(torch.bfloat16)
        b = ((torch.rand(c, generator=self.generator, device="cuda") * 2 - 1) * 0.05).to(torch.bfloat16)
        self.tensors[name] = (w, b)

    def __getitem__(self, name):
        return self.tensors[name]


def res_weights(w, prefix, cin, cout):
    w.norm(f"{prefix}.norm1", cin)
    w.conv(f"{prefix}.conv1", cout, cin, (3, 3, 3))
    w.norm(f"{prefix}.norm2", cout)
    w.conv(f"{prefix}.conv2", cout, cout, (3, 3, 3))
    if cin != cout:
        w.conv(f"{prefix}.nin", cout, cin, (1, 1, 1))


def build_weights():
    w = Weights()
    width = CH * MULT[-1]
    w.conv("conv_in", PATCH, Z, (3, 3, 3))
    w.conv("unpatchify", width * 8, PATCH, (3, 3, 3))
    res_weights(w, "mid.1", width, width)
    w.norm("mid.attn.norm", width)
    for proj in ("q", "k", "v", "o"):
        w.conv(f"mid.attn.{proj}", width, width, (1, 1, 1))
    res_weights(w, "mid.2", width, width)
    for level in (3, 2, 1, 0):
        out = CH * MULT[level]
        for b in range(BLOCKS):
            res_weights(w, f"up.{level}.{b}", width, out)
            width = out
        if level in (3, 2):
            w.conv(f"up.{level}.conv1", width, width, (3, 3, 3))
            w.norm(f"up.{level}.norm1", width)
            w.conv(f"up.{level}.conv2", width, width, (3, 3, 3))
            w.norm(f"up.{level}.norm2", width)
        elif level == 1:
            w.conv(f"up.{level}.conv2d", width, width, (3, 3))
    w.norm("norm_out", width)
    w.conv("conv_out", 3, width, (3, 3, 3))
    return w


# Activations are [B, T, H, W, C] contiguous (channels last).

def conv3d(x, wb, causal=True, residual=None):
    weight, bias = wb
    k = weight.shape[2]
    if causal and k > 1:
        x = torch.cat([x.new_zeros((x.shape[0], k - 1, *x.shape[2:])), x], dim=1)
    out = F.conv3d(x.permute(0, 4, 1, 2, 3), weight, bias, padding=(0, k // 2, k // 2))
    out = out.permute(0, 2, 3, 4, 1)
    if residual is not None:
        out = out + residual
    return out.contiguous()


def group_norm(x, wb, silu):
    weight, bias = wb
    b, t, h, w, c = x.shape
    frames = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # NCHW view, channels_last memory
    out = F.group_norm(frames, GROUPS, weight, bias, 1e-5)
    if silu:
        out = F.silu(out)
    return out.permute(0, 2, 3, 1).reshape(b, t, h, w, c).contiguous()


def res_block(x, w, prefix):
    h = conv3d(group_norm(x, w[f"{prefix}.norm1"], True), w[f"{prefix}.conv1"])
    shortcut = conv3d(x, w[f"{prefix}.nin"], causal=False) if f"{prefix}.nin" in w.tensors else x
    return conv3d(group_norm(h, w[f"{prefix}.norm2"], True), w[f"{prefix}.conv2"], residual=shortcut)


def attn_block(x, w):
    b, t, h, wd, c = x.shape
    n = group_norm(x, w["mid.attn.norm"], False)
    q, k, v = (conv3d(n, w[f"mid.attn.{p}"], causal=False).reshape(b, 1, t * h * wd, c) for p in ("q", "k", "v"))
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True).reshape(b, t, h, wd, c)
    return conv3d(a, w["mid.attn.o"], causal=False, residual=x)


def nearest(x, time_factor):
    # [B, T, H, W, C] -> nearest x2 in H, W (and T when time_factor is 2).
    y = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return y.repeat_interleave(2, dim=1) if time_factor == 2 else y


def pixel_shuffle(x):
    b, t, h, w, c8 = x.shape
    c = c8 // 8
    y = x.reshape(b, t, h, w, c, 2, 2, 2).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, 2 * t, 2 * h, 2 * w, c)
    return y[:, 1:].contiguous()


def decode_chunk(z, w):
    """z [B, 3, h, w, 64] -> frames [B, 17, 3, 16h, 16w]."""
    width = CH * MULT[-1]
    h = conv3d(z, w["conv_in"], residual=z.repeat_interleave(PATCH // Z, dim=-1))
    h = pixel_shuffle(conv3d(h, w["unpatchify"], residual=h.repeat_interleave(width * 8 // PATCH, dim=-1)))
    h = res_block(h, w, "mid.1")
    h = attn_block(h, w)
    h = res_block(h, w, "mid.2")
    for level in (3, 2, 1, 0):
        for b in range(BLOCKS):
            h = res_block(h, w, f"up.{level}.{b}")
        if level in (3, 2):
            x = nearest(h, 2)
            u = conv3d(x, w[f"up.{level}.conv1"])
            u = conv3d(group_norm(u, w[f"up.{level}.norm1"], True), w[f"up.{level}.conv2"])
            u = group_norm(u, w[f"up.{level}.norm2"], False)
            h = F.silu(u + x) + x
        elif level == 1:
            weight, bias = w[f"up.{level}.conv2d"]
            b_, t_, hh, ww, c = h.shape
            frames = nearest(h, 1).reshape(b_ * t_, 2 * hh, 2 * ww, c).permute(0, 3, 1, 2)
            h = F.conv2d(frames, weight, bias, padding=1).permute(0, 2, 3, 1).reshape(b_, t_, 2 * hh, 2 * ww, c).contiguous()
    h = conv3d(group_norm(h, w["norm_out"], True), w["conv_out"])
    return h[:, 3:].permute(0, 1, 4, 2, 3)  # [B, 17, 3, H, W]


@torch.inference_mode()
def decode(latents, w):
    """latents [B, 3k, 64, h, w] -> [B, 17k, 3, 16h, 16w], sequential boundary mix in bf16."""
    chunks = [decode_chunk(c.permute(0, 1, 3, 4, 2).contiguous(), w) for c in latents.split(3, dim=1)]
    x = torch.cat(chunks, dim=1)
    front = slice(16, x.shape[1] - 1, 17)
    back = slice(17, x.shape[1], 17)
    x[:, back] = x[:, back] * 0.6 + x[:, front] * 0.4
    x[:, front] = x[:, front] * 0.6 + x[:, back] * 0.4
    return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", default="17,204")
    parser.add_argument("--height", type=int, default=544)
    parser.add_argument("--width", type=int, default=992)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--result", default=None)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    w = build_weights()
    weight_bytes = sum(t.numel() * t.element_size() for pair in w.tensors.values() for t in pair)
    results = []
    for frames in (int(f) for f in args.frames.split(",")):
        latents = torch.randn(1, frames // 17 * 3, Z, args.height // 16, args.width // 16, device="cuda", dtype=torch.bfloat16)
        decode(latents[:, :3], w)  # warm-up: cuDNN autotuning, allocator pool
        torch.cuda.synchronize()
        samples = []
        for _ in range(args.runs):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            out = decode(latents, w)
            torch.cuda.synchronize()
            samples.append((time.perf_counter() - start) * 1e3)
            peak = torch.cuda.max_memory_allocated()
            del out
        samples.sort()
        ms = samples[len(samples) // 2]
        result = {
            "benchmark": "vae-decode-torch",
            "frames": frames,
            "height": args.height,
            "width": args.width,
            "torchMs": round(ms, 1),
            "torchMsPerChunk": round(ms / (frames // 17), 1),
            "torchPeakGiB": round(peak / 2**30, 2),
            "weightsGiB": round(weight_bytes / 2**30, 3),
            "torch": torch.__version__,
        }
        print(json.dumps(result), flush=True)
        results.append(result)
        del latents
        torch.cuda.empty_cache()
    if args.result:
        with open(args.result, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
