"""CPU emulation of the tensor-core attention kernel (cuda/attention_mma.cuh), for checking its
index math where no GPU is at hand. Not a test of the CUDA code itself: a line-by-line numpy mirror
of the kernel (one CTA at a time, each warp as 32-lane vectors) that keeps its swizzled shared-memory
tiles, cp.async ring stages, ldmatrix lane addresses, the wide-head partial-S exchange, masks, online
softmax and the staged epilogue, with ldmatrix (plain and .trans) and mma.m16n8k16 implemented from
the PTX ISA's fragment definitions. Uninitialised shared memory is NaN, so a read of a slot the
kernel never wrote shows up. bf16 rounding where the kernel rounds (inputs, P, output).
Keep CONFIGS equal to the dispatch in cuda/attention.cu and mirror any change to the kernel here.
    python3 benchmarks/attention/emulate_mma.py      (numpy; about 30 s; exit status 1 on a failure)
"""
import math
import sys

import numpy as np

LOG2E = 1.4426950408889634


def bf16(x):
    a = np.asarray(x, dtype=np.float32).copy()
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


def swizzled(D, row, col):
    return row * D + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7)


LANES = np.arange(32)
G = LANES >> 2
T = LANES & 3


def ldmatrix_x4(smem, addrs, trans):
    """addrs[lane]: element offset of the 16-byte row that lane supplies (lane 8m + r: row r of
    matrix m). Returns regs[4][32][2]."""
    rows = np.stack([smem[a:a + 8] for a in addrs])  # [32, 8]
    mats = rows.reshape(4, 8, 8)  # [matrix, row, col]
    regs = np.zeros((4, 32, 2), np.float32)
    for m in range(4):
        if not trans:
            regs[m, :, 0] = mats[m, LANES // 4, 2 * (LANES % 4)]
            regs[m, :, 1] = mats[m, LANES // 4, 2 * (LANES % 4) + 1]
        else:
            regs[m, :, 0] = mats[m, 2 * (LANES % 4), LANES // 4]
            regs[m, :, 1] = mats[m, 2 * (LANES % 4) + 1, LANES // 4]
    return regs


def mma_16816(c, a, b0, b1):
    """c: [32, 4] f32; a: [4][32][2]; b0, b1: [32][2]. Fragments per the PTX ISA figures."""
    A = np.zeros((16, 16), np.float64)
    for j in range(2):
        A[G, 2 * T + j] = a[0][:, j]
        A[G + 8, 2 * T + j] = a[1][:, j]
        A[G, 8 + 2 * T + j] = a[2][:, j]
        A[G + 8, 8 + 2 * T + j] = a[3][:, j]
    B = np.zeros((16, 8), np.float64)
    for j in range(2):
        B[2 * T + j, G] = b0[:, j]
        B[8 + 2 * T + j, G] = b1[:, j]
    C = np.zeros((16, 8), np.float64)
    for j in range(2):
        C[G, 2 * T + j] = c[:, j]
        C[G + 8, 2 * T + j] = c[:, 2 + j]
    Dm = A @ B + C
    out = np.zeros((32, 4), np.float32)
    for j in range(2):
        out[:, j] = Dm[G, 2 * T + j]
        out[:, 2 + j] = Dm[G + 8, 2 * T + j]
    return out


def shfl_xor(v, m):
    return v[LANES ^ m]


def alibi_slope(h, heads):
    n = 1
    while n * 2 <= heads:
        n *= 2
    if h < n:
        return 2.0 ** (-8.0 * (h + 1) / n)
    return 2.0 ** (-4.0 * (2 * (h - n) + 1) / n)


def kernel(q, k, v, out, kv_len, p, cfg, alibi, block):
    D, WM, WD, BN, ST = cfg
    BM, DW, W = 16 * WM, D // WD, WM * WD
    threads = W * 32
    gx, h, b = block
    heads, group, q_len, Nk, offset, scale_log2, causal = p
    q_elems = BM * D
    tile_elems = BN * D
    smem = np.full(q_elems + ST * 2 * tile_elems, np.nan, np.float32)
    nblocks = (q_len + BM - 1) // BM
    m_block = nblocks - 1 - gx if causal else gx
    hk = h // group
    m0 = m_block * BM
    q_bh = q[b, h].reshape(-1)
    k_bh = k[b, hk].reshape(-1)
    v_bh = v[b, hk].reshape(-1)
    visible = Nk
    if kv_len is not None:
        visible = min(visible, max(int(kv_len[b]), 0))
    n_end = visible
    last_row = min(m0 + BM, q_len) - 1
    if causal:
        n_end = min(n_end, last_row + offset + 1)
    n_tiles = (n_end + BN - 1) // BN if n_end > 0 else 0

    def load_tile(base, src, row0, valid_rows, rows):
        cpr = D // 8
        for c in range(rows * cpr):
            row, col = c // cpr, (c % cpr) * 8
            at = base + swizzled(D, row, col)
            if row0 + row < valid_rows:
                smem[at:at + 8] = src[(row0 + row) * D + col:(row0 + row) * D + col + 8]
            else:
                smem[at:at + 8] = 0.0

    load_tile(0, q_bh, m0, q_len, BM)
    for s in range(ST - 1):
        if s < n_tiles:
            load_tile(q_elems + (2 * s) * tile_elems, k_bh, s * BN, visible, BN)
            load_tile(q_elems + (2 * s + 1) * tile_elems, v_bh, s * BN, visible, BN)

    warps = []
    for warp in range(W):
        wm, wd = warp % WM, warp // WM
        qf = []
        for kk in range(DW // 16):
            row = wm * 16 + (LANES & 7) + ((LANES >> 3) & 1) * 8
            col = wd * DW + kk * 16 + (LANES >> 4) * 8
            qf.append(ldmatrix_x4(smem, [swizzled(D, r, c) for r, c in zip(row, col)], False))
        warps.append(dict(wm=wm, wd=wd, qf=qf, o=np.zeros((DW // 8, 32, 4), np.float32),
                          row_max=np.full((2, 32), -np.inf, np.float32), row_sum=np.zeros((2, 32), np.float32),
                          row0=m0 + wm * 16 + G))
    alibi_log2 = alibi_slope(h, heads) * LOG2E if alibi else 0.0

    for tile in range(n_tiles):
        ahead = tile + ST - 1
        if ahead < n_tiles:
            s = ahead % ST
            load_tile(q_elems + (2 * s) * tile_elems, k_bh, ahead * BN, visible, BN)
            load_tile(q_elems + (2 * s + 1) * tile_elems, v_bh, ahead * BN, visible, BN)
        k_base = q_elems + (2 * (tile % ST)) * tile_elems
        v_base = q_elems + (2 * (tile % ST) + 1) * tile_elems
        n0 = tile * BN
        partial = []
        for w in warps:
            s_acc = np.zeros((BN // 8, 32, 4), np.float32)
            for kk in range(DW // 16):
                for np_ in range(BN // 16):
                    key = np_ * 16 + (LANES & 7) + (LANES >> 4) * 8
                    col = w['wd'] * DW + kk * 16 + ((LANES >> 3) & 1) * 8
                    kf = ldmatrix_x4(smem, [k_base + swizzled(D, r, c) for r, c in zip(key, col)], False)
                    s_acc[2 * np_] = mma_16816(s_acc[2 * np_], w['qf'][kk], kf[0], kf[1])
                    s_acc[2 * np_ + 1] = mma_16816(s_acc[2 * np_ + 1], w['qf'][kk], kf[2], kf[3])
            partial.append(s_acc)
        if WD > 1:  # exchange: fixed order wd = 0..WD-1
            summed = []
            for warp, w in enumerate(warps):
                total = np.zeros_like(partial[0])
                for wd in range(WD):
                    total = (total + partial[wd * WM + w['wm']]).astype(np.float32)
                summed.append(total)
            partial = summed
        for warp, w in enumerate(warps):
            s_acc = partial[warp].copy()
            edge = n0 + BN > visible or (causal and n0 + BN - 1 > m0 + w['wm'] * 16 + offset)
            for i in range(BN // 8):
                for c in range(4):
                    key = n0 + i * 8 + 2 * T + (c & 1)
                    row = w['row0'] + (c >> 1) * 8
                    x = (s_acc[i, :, c] * np.float32(scale_log2)).astype(np.float32)
                    masked = (key >= visible) | (causal & (key > row + offset)) if edge else np.zeros(32, bool)
                    if alibi:
                        with np.errstate(invalid='ignore'):
                            x = np.where(masked, x, x - alibi_log2 * np.sqrt((row + offset - key).astype(np.float32)))
                    x = np.where(masked, -np.inf, x)
                    s_acc[i, :, c] = x
            for r in range(2):
                tile_max = np.full(32, -np.inf, np.float32)
                for i in range(BN // 8):
                    tile_max = np.maximum(tile_max, np.maximum(s_acc[i, :, 2 * r], s_acc[i, :, 2 * r + 1]))
                tile_max = np.maximum(tile_max, shfl_xor(tile_max, 1))
                tile_max = np.maximum(tile_max, shfl_xor(tile_max, 2))
                new_max = np.maximum(w['row_max'][r], tile_max)
                ref = np.where(new_max == -np.inf, 0.0, new_max)
                correction = np.exp2(w['row_max'][r] - ref)
                w['row_max'][r] = new_max
                ssum = np.zeros(32, np.float32)
                for i in range(BN // 8):
                    s_acc[i, :, 2 * r] = np.exp2(s_acc[i, :, 2 * r] - ref)
                    s_acc[i, :, 2 * r + 1] = np.exp2(s_acc[i, :, 2 * r + 1] - ref)
                    ssum += s_acc[i, :, 2 * r] + s_acc[i, :, 2 * r + 1]
                w['row_sum'][r] = w['row_sum'][r] * correction + ssum
                w['o'][:, :, 2 * r] *= correction
                w['o'][:, :, 2 * r + 1] *= correction
            for kk in range(BN // 16):
                pf = [bf16(np.stack([s_acc[2 * kk][:, 0], s_acc[2 * kk][:, 1]], 1)),
                      bf16(np.stack([s_acc[2 * kk][:, 2], s_acc[2 * kk][:, 3]], 1)),
                      bf16(np.stack([s_acc[2 * kk + 1][:, 0], s_acc[2 * kk + 1][:, 1]], 1)),
                      bf16(np.stack([s_acc[2 * kk + 1][:, 2], s_acc[2 * kk + 1][:, 3]], 1))]
                for dp in range(DW // 16):
                    key = kk * 16 + (LANES & 7) + ((LANES >> 3) & 1) * 8
                    col = w['wd'] * DW + dp * 16 + (LANES >> 4) * 8
                    vf = ldmatrix_x4(smem, [v_base + swizzled(D, r, c) for r, c in zip(key, col)], True)
                    w['o'][2 * dp] = mma_16816(w['o'][2 * dp], pf, vf[0], vf[1])
                    w['o'][2 * dp + 1] = mma_16816(w['o'][2 * dp + 1], pf, vf[2], vf[3])
    # epilogue through the Q region
    smem[:q_elems] = np.nan
    for w in warps:
        for r in range(2):
            total = w['row_sum'][r].copy()
            total = total + shfl_xor(total, 1)
            total = total + shfl_xor(total, 2)
            inv = np.where(total > 0, 1.0 / np.where(total > 0, total, 1), 0.0)
            row = w['wm'] * 16 + G + r * 8
            for i in range(DW // 8):
                col = w['wd'] * DW + i * 8 + 2 * T
                vals = bf16(np.stack([w['o'][i, :, 2 * r] * inv, w['o'][i, :, 2 * r + 1] * inv], 1))
                for lane in range(32):
                    at = swizzled(D, int(row[lane]), int(col[lane]))
                    smem[at:at + 2] = vals[lane]
    cpr = D // 8
    for c in range(BM * cpr):
        row, col = c // cpr, (c % cpr) * 8
        i = m0 + row
        if i < q_len:
            at = swizzled(D, row, col)
            out[b, i, h, col:col + 8] = smem[at:at + 8]


CONFIGS = {64: (64, 4, 1, 64, 2), 128: (128, 8, 1, 64, 2), 256: (256, 4, 2, 64, 2), 512: (512, 2, 4, 32, 2)}


def flash(q, k, v, kv_len, causal, alibi, scale=None):
    B, H, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    scale = scale if scale is not None else 1 / math.sqrt(D)
    cfg = CONFIGS[D]
    BM = 16 * cfg[1]
    p = (H, H // Hkv, Nq, Nk, Nk - Nq, np.float32(scale * LOG2E), causal)
    out = np.full((B, Nq, H, D), np.nan, np.float32)
    for b in range(B):
        for h in range(H):
            for gx in range((Nq + BM - 1) // BM):
                kernel(q, k, v, out, kv_len, p, cfg, alibi, (gx, h, b))
    return out


def reference(q, k, v, kv_len, causal, alibi, scale=None):
    B, H, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    scale = scale if scale is not None else 1 / math.sqrt(D)
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    out = np.zeros((B, Nq, H, D))
    offset = Nk - Nq
    for b in range(B):
        for h in range(H):
            hk = h // (H // Hkv)
            slope = alibi_slope(h, H) if alibi else 0
            for i in range(Nq):
                last = min(Nk, max(0, int(kv_len[b]))) if kv_len is not None else Nk
                if causal:
                    last = min(last, i + offset + 1)
                if last == 0:
                    continue
                s = k[b, hk, :last] @ q[b, h, i] * scale
                if alibi:
                    s -= slope * np.sqrt(i + offset - np.arange(last))
                pr = np.exp(s - s.max())
                out[b, i, h] = pr @ v[b, hk, :last] / pr.sum()
    return out


def rel(a, r):
    return float(np.linalg.norm((a - r).ravel()) / max(np.linalg.norm(r.ravel()), 1e-30))


def case(name, B, H, Hkv, Nq, Nk, D, kv_len=None, causal=False, alibi=False, seed=0, nan_pad=False):
    rng = np.random.default_rng(seed)
    q = bf16(rng.standard_normal((B, H, Nq, D)) * 1.5)
    k = bf16(rng.standard_normal((B, Hkv, Nk, D)))
    v = bf16(rng.standard_normal((B, Hkv, Nk, D)))
    kl = np.array(kv_len, np.int32) if kv_len is not None else None
    ref = reference(q, k, v, kl, causal, alibi)
    if nan_pad and kl is not None:
        for b in range(B):
            k[b, :, max(int(kl[b]), 0):] = np.nan
            v[b, :, max(int(kl[b]), 0):] = np.nan
    got = flash(q, k, v, kl, causal, alibi)
    err = rel(got, ref)
    round_err = rel(bf16(ref), ref)
    tol = 2 * round_err + 1e-3
    ok = np.isfinite(got).all() and err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: rel {err:.2e} (tolerance {tol:.2e})", flush=True)
    return ok


if __name__ == '__main__':
    results = [
        case('N=1 D=128', 1, 2, 2, 1, 1, 128, seed=1),
        case('N=65 D=128', 1, 2, 2, 65, 65, 128, seed=2),
        case('N=129 D=128 causal', 1, 1, 1, 129, 129, 128, causal=True, seed=3),
        case('65 q over 200 k causal D=64 (3 tiles ring)', 2, 1, 1, 65, 200, 64, causal=True, seed=4),
        case('kv_len [64, 65] D=128 NaN padding', 2, 1, 1, 70, 129, 128, kv_len=[64, 65], seed=5, nan_pad=True),
        case('kv_len [0, 500, -3]', 3, 1, 1, 9, 40, 64, kv_len=[0, 500, -3], seed=6),
        case('GQA 4/2 causal alibi N=150 D=128', 1, 4, 2, 150, 150, 128, causal=True, alibi=True, seed=7),
        case('causal alibi 6 heads/3 17 q over 80 k', 1, 6, 3, 17, 80, 128, causal=True, alibi=True, seed=8),
        case('D=256 kv_len [97, 40]', 2, 1, 1, 97, 97, 256, kv_len=[97, 40], seed=9),
        case('D=256 causal N=150', 1, 1, 1, 150, 150, 256, causal=True, seed=10),
        case('D=512 causal N=100', 1, 1, 1, 100, 100, 512, causal=True, seed=11),
        case('D=512 kv_len [70, 33] N=70', 2, 1, 1, 70, 70, 512, kv_len=[70, 33], seed=12),
    ]
    sys.exit(0 if all(results) else 1)
