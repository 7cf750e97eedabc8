"""CPU emulation of the tensor-core convolution kernels of cuda/conv.cu, for checking their index math
where no GPU is at hand (the companion of benchmarks/attention/emulate_mma.py). Not a test of the
CUDA code itself: a line-by-line numpy mirror of

  conv_mma_kernel    every tile shape the dispatch uses: the per-thread row origins, the TapCursor, the
                     cp.async ring (commit groups, wait_group, which stage is overwritten when), the
                     64-byte-row XOR swizzle, ldmatrix lane addresses, mma.m16n8k16 fragments (from the
                     PTX ISA figures), and the paired/scalar epilogue;
  conv_wgmma_kernel  the 128-byte-swizzled stores, the shared-memory matrix descriptors (decoded the way
                     the PTX ISA defines them: start address, SBO, 128B swizzle on address bits 4-6 ^ 7-9),
                     the K-advance by 32 bytes inside a swizzled row, the stage ring with wgmma.wait_group 1,
                     and the m64nNk16 accumulator layout.

Inputs are small integers, so every product and sum is exact in f32 and the emulated output must
equal the float64 reference exactly: any index, swizzle or fragment slip shows as a mismatch.
Shared memory starts as NaN, so reading a slot the kernel never wrote shows up too; every cp.async
source is bounds- and alignment-checked, every output element must be written exactly once.
    python3 benchmarks/vae/emulate_conv_mma.py      (numpy; about 30 s; exit status 1 on a failure)
"""
import sys

import numpy as np

LANES = np.arange(32)
G = LANES >> 2
T = LANES & 3
K_MMA = 32  # kMmaK
CHUNKS = K_MMA // 8


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# ---- the problem: ConvShape and the reference -------------------------------------------------------

def make_shape(spec):
    B, Ti, Hi, Wi, C = spec['input']
    kt, kh, kw = spec['kernel']
    st, sh, sw = spec.get('stride', (1, 1, 1))
    front, back, top, bottom, left, right = spec.get('pads', (0,) * 6)
    ut, us = spec.get('up', (1, 1))
    To = (Ti * ut + front + back - kt) // st + 1
    Ho = (Hi * us + top + bottom - kh) // sh + 1
    Wo = (Wi * us + left + right - kw) // sw + 1
    s = dict(B=B, in_t=Ti, in_h=Hi, in_w=Wi, in_ch=C, out_t=To, out_h=Ho, out_w=Wo, out_ch=spec['cout'],
             kt=kt, kh=kh, kw=kw, stride_t=st, stride_h=sh, stride_w=sw, pad_front=front, pad_top=top,
             pad_left=left, up_t_shift=ut.bit_length() - 1, up_s_shift=us.bit_length() - 1,
             virtual_t=Ti * ut, virtual_h=Hi * us, virtual_w=Wi * us)
    s['M'] = B * To * Ho * Wo
    s['K'] = kt * kh * kw * C
    s['batch_stride'] = Ti * Hi * Wi * C
    return s


def reference(s, x, w, bias, residual):
    out = np.zeros((s['M'], s['out_ch']), np.float64)
    for m in range(s['M']):
        r = row_origin(s, m)
        acc = np.zeros(s['out_ch'])
        for dt in range(s['kt']):
            for dh in range(s['kh']):
                for dw in range(s['kw']):
                    off = tap_offset(s, r, dt, dh, dw)
                    if off < 0:
                        continue
                    k0 = ((dt * s['kh'] + dh) * s['kw'] + dw) * s['in_ch']
                    acc += w[:, k0:k0 + s['in_ch']] @ x[off:off + s['in_ch']]
        out[m] = acc
    if bias is not None:
        out += bias
    if residual is not None:
        out += residual.reshape(out.shape)
    return out


def row_origin(s, m):
    valid = m < s['M']
    if not valid:
        m = 0
    wo = m % s['out_w']
    rest = m // s['out_w']
    ho = rest % s['out_h']
    rest //= s['out_h']
    to = rest % s['out_t']
    return dict(batch_offset=(rest // s['out_t']) * s['batch_stride'], t0=to * s['stride_t'] - s['pad_front'],
                h0=ho * s['stride_h'] - s['pad_top'], w0=wo * s['stride_w'] - s['pad_left'], valid=valid)


def tap_offset(s, r, dt, dh, dw):
    tv, hv, wv = r['t0'] + dt, r['h0'] + dh, r['w0'] + dw
    if (not r['valid'] or tv < 0 or tv >= s['virtual_t'] or hv < 0 or hv >= s['virtual_h'] or wv < 0
            or wv >= s['virtual_w']):
        return -1
    pixel = ((tv >> s['up_t_shift']) * s['in_h'] + (hv >> s['up_s_shift'])) * s['in_w'] + (wv >> s['up_s_shift'])
    return r['batch_offset'] + pixel * s['in_ch']


class TapCursor:
    def __init__(self):
        self.ci0 = self.dt = self.dh = self.dw = 0

    def advance(self, s, step):
        self.ci0 += step
        if self.ci0 < s['in_ch']:
            return
        self.ci0 = 0
        self.dw += 1
        if self.dw < s['kw']:
            return
        self.dw = 0
        self.dh += 1
        if self.dh < s['kh']:
            return
        self.dh = 0
        self.dt += 1


def copy_16(smem, dst, src_array, src, valid, what):
    """cp.async.cg 16 bytes: dst/src in 16-bit elements; valid == False zero-fills and reads nothing."""
    check(dst % 8 == 0 and 0 <= dst and dst + 8 <= smem.size, f'{what}: shared destination {dst} out of range or misaligned')
    if valid:
        check(src % 8 == 0, f'{what}: global source element {src} not 16-byte aligned')
        check(0 <= src and src + 8 <= src_array.size, f'{what}: global source [{src}, {src + 8}) outside [0, {src_array.size})')
        smem[dst:dst + 8] = src_array[src:src + 8]
    else:
        smem[dst:dst + 8] = 0.0


class Ring:
    """cp.async commit groups and wait_group, and which K tile each stage holds."""

    def __init__(self, stages):
        self.groups = []  # per committed group: the (stage, tile) loads it holds
        self.open = []
        self.done = 0  # groups known complete
        self.holds = [None] * stages  # tile each stage holds
        self.consumed = set()

    def load(self, stage, tile):
        prev = self.holds[stage]
        check(prev is None or prev in self.consumed, f'stage {stage} overwritten with tile {tile} while tile {prev} is unread')
        self.holds[stage] = tile
        self.open.append(tile)

    def commit(self):
        self.groups.append(self.open)
        self.open = []

    def wait(self, pending):
        self.done = max(self.done, len(self.groups) - pending)

    def read(self, stage, tile):
        check(self.holds[stage] == tile, f'stage {stage} holds tile {self.holds[stage]}, tile {tile} expected')
        landed = any(tile in g for g in self.groups[:self.done])
        check(landed, f'tile {tile} read before its cp.async group completed')
        self.consumed.add(tile)


# ---- mma.sync kernel ------------------------------------------------------------------------------

def swizzled(row, chunk):
    return row * K_MMA + ((chunk ^ ((row >> 1) & 3)) << 3)


def ldmatrix_x4(smem, addrs):
    for a in addrs:
        check(a % 8 == 0 and 0 <= a and a + 8 <= smem.size, f'ldmatrix address {a} out of range or misaligned')
    rows = np.stack([smem[a:a + 8] for a in addrs]).reshape(4, 8, 8)
    regs = np.zeros((4, 32, 2), np.float64)
    for m in range(4):
        regs[m, :, 0] = rows[m, LANES // 4, 2 * (LANES % 4)]
        regs[m, :, 1] = rows[m, LANES // 4, 2 * (LANES % 4) + 1]
    return regs


def mma_16816(c, a, b0, b1):
    A = np.zeros((16, 16))
    B = np.zeros((16, 8))
    C = np.zeros((16, 8))
    for j in range(2):
        A[G, 2 * T + j] = a[0][:, j]
        A[G + 8, 2 * T + j] = a[1][:, j]
        A[G, 8 + 2 * T + j] = a[2][:, j]
        A[G + 8, 8 + 2 * T + j] = a[3][:, j]
        B[2 * T + j, G] = b0[:, j]
        B[8 + 2 * T + j, G] = b1[:, j]
        C[G, 2 * T + j] = c[:, j]
        C[G + 8, 2 * T + j] = c[:, 2 + j]
    D = A @ B + C
    out = np.zeros((32, 4))
    for j in range(2):
        out[:, j] = D[G, 2 * T + j]
        out[:, 2 + j] = D[G + 8, 2 * T + j]
    return out


def mma_kernel(s, x, w, bias, residual, out, writes, cfg, tile, paired):
    BM, BN, WM, WN, ST = cfg
    threads = 32 * WM * WN
    warp_m, warp_n = BM // WM, BN // WN
    frags_m, frags_n = warp_m // 16, warp_n // 8
    a_chunks, b_chunks = BM * CHUNKS, BN * CHUNKS
    check(a_chunks % threads == 0, 'A chunks per thread')
    a_per, b_per = a_chunks // threads, (b_chunks + threads - 1) // threads
    stage_elems = (BM + BN) * K_MMA
    smem = np.full(ST * stage_elems, np.nan)
    n_tiles = (s['out_ch'] + BN - 1) // BN
    n0, m0 = (tile % n_tiles) * BN, (tile // n_tiles) * BM

    tids = range(threads)
    a_rows = {tid: [row_origin(s, m0 + (tid + i * threads) // CHUNKS) for i in range(a_per)] for tid in tids}
    cursors = {tid: TapCursor() for tid in tids}
    ring = Ring(ST)

    def load_stage(stage, k_tile):
        a_tile = stage * stage_elems
        b_tile = a_tile + BM * K_MMA
        k0 = k_tile * K_MMA
        for tid in tids:
            cur = cursors[tid]
            a_chunk = tid % CHUNKS
            for i in range(a_per):
                row = (tid + i * threads) // CHUNKS
                off = tap_offset(s, a_rows[tid][i], cur.dt, cur.dh, cur.dw)
                copy_16(smem, a_tile + swizzled(row, a_chunk), x, off + cur.ci0 + a_chunk * 8, off >= 0, 'A')
            for i in range(b_per):
                c = tid + i * threads
                if c < b_chunks:
                    row, chunk = c // CHUNKS, c % CHUNKS
                    inside = n0 + row < s['out_ch']
                    copy_16(smem, b_tile + swizzled(row, chunk), w, (n0 + row) * s['K'] + k0 + chunk * 8, inside, 'B')
            cur.advance(s, K_MMA)
        ring.load(stage, k_tile)

    acc = np.zeros((WM * WN, frags_m, frags_n, 32, 4))
    k_tiles = s['K'] // K_MMA
    for stage in range(ST - 1):
        if stage < k_tiles:
            load_stage(stage, stage)
        ring.commit()
    for kt in range(k_tiles):
        ring.wait(ST - 2)  # copy_wait + __syncthreads
        nxt = kt + ST - 1
        if nxt < k_tiles:
            load_stage(nxt % ST, nxt)
        ring.commit()
        ring.read(kt % ST, kt)
        a_tile = (kt % ST) * stage_elems
        b_tile = a_tile + BM * K_MMA
        for warp in range(WM * WN):
            wm0, wn0 = (warp // WN) * warp_m, (warp % WN) * warp_n
            for kk in range(K_MMA // 16):
                a_frag = []
                for i in range(frags_m):
                    row = wm0 + i * 16 + (LANES & 15)
                    a_frag.append(ldmatrix_x4(smem, [a_tile + swizzled(r, kk * 2 + (l >> 4)) for r, l in zip(row, LANES)]))
                b_frag = [None] * frags_n
                for j in range(frags_n // 2):
                    row = wn0 + j * 16 + (LANES & 7) + ((LANES >> 4) << 3)
                    r4 = ldmatrix_x4(smem, [b_tile + swizzled(r, kk * 2 + ((l >> 3) & 1)) for r, l in zip(row, LANES)])
                    b_frag[2 * j] = (r4[0], r4[1])
                    b_frag[2 * j + 1] = (r4[2], r4[3])
                for i in range(frags_m):
                    for j in range(frags_n):
                        acc[warp, i, j] = mma_16816(acc[warp, i, j], a_frag[i], *b_frag[j])
    ring.wait(0)

    for warp in range(WM * WN):
        wm0, wn0 = (warp // WN) * warp_m, (warp % WN) * warp_n
        for i in range(frags_m):
            for half in range(2):
                for lane in range(32):
                    m = m0 + wm0 + i * 16 + (lane >> 2) + half * 8
                    if m >= s['M']:
                        continue
                    for j in range(frags_n):
                        n = n0 + wn0 + j * 8 + (lane & 3) * 2
                        if n >= s['out_ch']:
                            continue
                        epilogue(s, acc[warp, i, j, lane, 2 * half], acc[warp, i, j, lane, 2 * half + 1], m, n, bias,
                                 residual, out, writes, paired)


def epilogue(s, v0, v1, m, n, bias, residual, out, writes, paired):
    idx = m * s['out_ch'] + n
    second = n + 1 < s['out_ch']
    if bias is not None:
        v0 += bias[n]
        if second:
            v1 += bias[n + 1]
    if residual is not None:
        v0 += residual[idx]
        if second:
            v1 += residual[idx + 1]
    if paired and second:
        check(idx % 2 == 0, f'paired store at odd element {idx}')
    check(0 <= idx and idx + (2 if second else 1) <= out.size, f'store at {idx} outside out')
    out[idx] = v0
    writes[idx] += 1
    if second:
        out[idx + 1] = v1
        writes[idx + 1] += 1


# ---- wgmma kernel ---------------------------------------------------------------------------------

WG_ROWS, WG_COLS, WG_K, WG_STAGES, WG_THREADS = 128, 128, 64, 4, 256
WG_TILE_BYTES = WG_ROWS * WG_K * 2
WG_SHARED_BYTES = WG_STAGES * 2 * WG_TILE_BYTES + 1024


def swizzled_128(row, chunk):
    return row * 128 + ((chunk ^ (row & 7)) << 4)


def wgmma_descriptor(address):
    d = (address & 0x3FFFF) >> 4
    d |= (16 >> 4) << 16
    d |= (1024 >> 4) << 32
    d |= 1 << 62
    return d


def read_operand(smem_bytes, desc, rows):
    """What wgmma reads for a K-major operand of `rows` x 16 halves under a 128B-swizzle descriptor: row r,
    element k at start + (r / 8)·SBO + (r % 8)·128 + 2k, then bits 4-6 ^= bits 7-9 of the address."""
    check(desc >> 62 == 1, 'descriptor: not 128-byte swizzle')
    start = (desc & 0x3FFF) << 4
    sbo = ((desc >> 32) & 0x3FFF) << 4
    out = np.zeros((rows, 16))
    for r in range(rows):
        for k in range(16):
            addr = start + (r // 8) * sbo + (r % 8) * 128 + 2 * k
            phys = addr ^ (((addr >> 7) & 7) << 4)
            check(0 <= phys and phys + 2 <= smem_bytes.size * 2, f'wgmma reads byte {phys} outside shared memory')
            out[r, k] = smem_bytes[phys // 2]
    return out


def wgmma_kernel(s, x, w, bias, residual, out, writes, tile, paired, raw):
    # smem as 16-bit slots, byte address = 2 * index; `raw` is the dynamic shared base address.
    smem = np.full((raw + WG_SHARED_BYTES) // 2, np.nan)
    base = (raw + 1023) & ~1023
    check(base + WG_STAGES * 2 * WG_TILE_BYTES <= raw + WG_SHARED_BYTES, 'stages overrun the dynamic shared memory')
    n_tiles = (s['out_ch'] + WG_COLS - 1) // WG_COLS
    n0, m0 = (tile % n_tiles) * WG_COLS, (tile // n_tiles) * WG_ROWS
    tids = range(WG_THREADS)
    a_rows = {tid: [row_origin(s, m0 + (tid >> 3) + 32 * i) for i in range(4)] for tid in tids}
    cursors = {tid: TapCursor() for tid in tids}
    ring = Ring(WG_STAGES)

    def load_stage(stage, k_tile):
        a_tile = base + stage * 2 * WG_TILE_BYTES
        b_tile = a_tile + WG_TILE_BYTES
        k0 = k_tile * WG_K
        for tid in tids:
            cur = cursors[tid]
            chunk = tid & 7
            for i in range(4):
                row = (tid >> 3) + 32 * i
                off = tap_offset(s, a_rows[tid][i], cur.dt, cur.dh, cur.dw)
                copy_16(smem, (a_tile + swizzled_128(row, chunk)) // 2, x, off + cur.ci0 + chunk * 8, off >= 0, 'A')
                inside = n0 + row < s['out_ch']
                copy_16(smem, (b_tile + swizzled_128(row, chunk)) // 2, w, (n0 + row) * s['K'] + k0 + chunk * 8, inside, 'B')
            cur.advance(s, WG_K)
        ring.load(stage, k_tile)

    D = np.zeros((2, 64, WG_COLS))
    k_tiles = s['K'] // WG_K
    for stage in range(WG_STAGES - 1):
        if stage < k_tiles:
            load_stage(stage, stage)
        ring.commit()
    in_flight = []  # wgmma groups not yet waited for: (tile, stage)
    for kt in range(k_tiles):
        ring.wait(WG_STAGES - 2)
        stage = kt % WG_STAGES
        ring.read(stage, kt)
        stage_base = base + stage * 2 * WG_TILE_BYTES
        for group in range(2):
            a_tile, b_tile = stage_base + group * 64 * 128, stage_base + WG_TILE_BYTES
            check(a_tile % 1024 == 0 and b_tile % 1024 == 0, 'operand tile not 1024-byte aligned')
            for k16 in range(WG_K // 16):
                A = read_operand(smem, wgmma_descriptor(a_tile + k16 * 32), 64)
                B = read_operand(smem, wgmma_descriptor(b_tile + k16 * 32), WG_COLS)
                D[group] += A @ B.T
        in_flight.append(stage)
        in_flight = in_flight[-1:]  # wgmma.wait_group 1 + __syncthreads: only group kt may still read its stage
        nxt = kt + WG_STAGES - 1
        if nxt < k_tiles:
            check(nxt % WG_STAGES not in in_flight, f'stage {nxt % WG_STAGES} reloaded while a wgmma group reads it')
            load_stage(nxt % WG_STAGES, nxt)
        ring.commit()
    ring.wait(0)

    # Accumulator registers per the m64nNk16 f32 layout, then the kernel's epilogue.
    for group in range(2):
        for wig in range(4):
            for lane in range(32):
                d = np.zeros(64)
                for i in range(64):
                    row = wig * 16 + lane // 4 + 8 * ((i % 4) >= 2)
                    col = (i // 4) * 8 + (lane % 4) * 2 + (i % 2)
                    d[i] = D[group, row, col]
                for half in range(2):
                    m = m0 + group * 64 + wig * 16 + (lane >> 2) + half * 8
                    if m >= s['M']:
                        continue
                    for j in range(16):
                        n = n0 + j * 8 + (lane & 3) * 2
                        if n >= s['out_ch']:
                            continue
                        epilogue(s, d[4 * j + 2 * half], d[4 * j + 2 * half + 1], m, n, bias, residual, out, writes, paired)


# ---- driver ---------------------------------------------------------------------------------------

MMA_CONFIGS = {'mma-128x128': (128, 128, 2, 4, 4), 'mma-128x64': (128, 64, 4, 2, 4),
               'mma-128x32': (128, 32, 4, 1, 4), 'mma-128x16': (128, 16, 4, 1, 4)}


def choose(s):
    """cuda/conv.cu choose_kernel for bf16, aligned tensors (wgmma listed separately)."""
    if s['out_ch'] > 64:
        return 'mma-128x128'
    if s['out_ch'] > 32:
        return 'mma-128x64'
    if s['out_ch'] > 16:
        return 'mma-128x32'
    return 'mma-128x16'


def run(name, spec, kernel, seed):
    s = make_shape(spec)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, s['B'] * s['in_t'] * s['in_h'] * s['in_w'] * s['in_ch']).astype(np.float64)
    w = rng.integers(-2, 3, (s['out_ch'], s['K'])).astype(np.float64)
    bias = rng.integers(-3, 4, s['out_ch']).astype(np.float64) if spec.get('bias') else None
    residual = rng.integers(-3, 4, s['M'] * s['out_ch']).astype(np.float64) if spec.get('residual') else None
    ref = reference(s, x, w.reshape(s['out_ch'], -1), bias, residual).reshape(-1)
    out = np.full(s['M'] * s['out_ch'], np.nan)
    writes = np.zeros(out.size, np.int64)
    paired = s['out_ch'] % 2 == 0
    if kernel == 'wgmma':
        check(s['in_ch'] % WG_K == 0 and s['out_ch'] > 64, 'wgmma needs Cin % 64 == 0 and Cout > 64')
        tiles = ((s['out_ch'] + WG_COLS - 1) // WG_COLS) * ((s['M'] + WG_ROWS - 1) // WG_ROWS)
        for tile in range(tiles):
            wgmma_kernel(s, x, w.reshape(-1), bias, residual, out, writes, tile, paired, raw=16)
    else:
        check(s['in_ch'] % K_MMA == 0, 'mma needs Cin % 32 == 0')
        BM, BN = MMA_CONFIGS[kernel][:2]
        tiles = ((s['out_ch'] + BN - 1) // BN) * ((s['M'] + BM - 1) // BM)
        for tile in range(tiles):
            mma_kernel(s, x, w.reshape(-1), bias, residual, out, writes, MMA_CONFIGS[kernel], tile, paired)
    check((writes == 1).all(), f'{int((writes == 0).sum())} elements never written, {int((writes > 1).sum())} written twice')
    bad = np.flatnonzero(out != ref)
    check(bad.size == 0, f'{bad.size} elements differ, first at {bad[:1]}: {out[bad[:1]]} vs {ref[bad[:1]]}')
    print(f'ok   {kernel:12s} {name}: M {s["M"]}, K {s["K"]}, Cout {s["out_ch"]}')


CAUSAL3 = (2, 0, 1, 1, 1, 1)
CASES = [
    # name, spec, kernels to run
    ('odd 3x5x7, B 2, 32 -> 3 (conv_out-like), causal', dict(input=(2, 3, 5, 7, 32), cout=3, kernel=(3, 3, 3), pads=CAUSAL3, bias=True), ['auto']),
    ('32 -> 17 (partial 32-wide N tile), 1x1x1 + residual', dict(input=(1, 2, 9, 7, 32), cout=17, kernel=(1, 1, 1), bias=True, residual=True), ['auto']),
    ('64 -> 40, x2 upsample on read in T,H,W', dict(input=(1, 2, 3, 4, 64), cout=40, kernel=(3, 3, 3), pads=CAUSAL3, up=(2, 2), bias=True), ['auto']),
    ('32 -> 96 stride 2, bottom/right pad (Downsample2D-like)', dict(input=(1, 1, 9, 11, 32), cout=96, kernel=(1, 3, 3), stride=(1, 2, 2), pads=(0, 0, 0, 1, 0, 1)), ['auto']),
    ('64 -> 130 (odd Cout: scalar stores), causal, residual', dict(input=(1, 2, 5, 6, 64), cout=130, kernel=(3, 3, 3), pads=CAUSAL3, bias=True, residual=True), ['auto', 'wgmma']),
    ('64 -> 128, B 2, odd 3x5x7, stride 2 in T only', dict(input=(2, 3, 5, 7, 64), cout=128, kernel=(3, 3, 3), stride=(2, 1, 1), pads=CAUSAL3, bias=True), ['auto', 'wgmma']),
    ('128 -> 192 (partial N tile), 2x9x11 (partial M tile)', dict(input=(1, 2, 9, 11, 128), cout=192, kernel=(3, 3, 3), pads=CAUSAL3, bias=True), ['auto', 'wgmma']),
    ('64 -> 72, spatial x2 only, 1x3x3', dict(input=(1, 2, 4, 5, 64), cout=72, kernel=(1, 3, 3), pads=(0, 0, 1, 1, 1, 1), up=(1, 2), residual=True), ['auto', 'wgmma']),
]


def main():
    failures = 0
    for i, (name, spec, kernels) in enumerate(CASES):
        for kernel in kernels:
            k = choose(make_shape(spec)) if kernel == 'auto' else kernel
            try:
                run(name, spec, k, 900 + i)
            except Failure as e:
                failures += 1
                print(f'FAIL {k:12s} {name}: {e}')
    print('all ok' if failures == 0 else f'{failures} failure(s)')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
