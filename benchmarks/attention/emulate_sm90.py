"""CPU emulation of the Hopper attention kernel (cuda/attention_sm90.cuh), for checking its index
math and its barrier protocol where no GPU is at hand. Not a test of the CUDA code itself: a
line-by-line numpy mirror of the kernel (one consumer warpgroup = 128 lanes as vectors) running on
models of the hardware it relies on, each written from the PTX ISA:

  * TMA (cp.async.bulk.tensor, 9.7.9.25 / tensor maps 5.5): a {64, 128, 1} box of a 3-D tensor,
    out-of-bounds elements zero, written with the 128-byte swizzle (byte-address bits 4-6 XOR
    bits 7-9), completing its bytes on an mbarrier at a random later time;
  * wgmma.mma_async m64n128k16 (9.7.15): operands read through the matrix descriptor's bit fields
    with the canonical layouts of 9.7.15.5.1.2.1 (K-major ((8,m),(T,2k)):((8T,SBO),(1,T)),
    N-major ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))) and the same swizzle; accumulators and A
    fragments distributed over the 128 threads as the m64nNk16 figures show; each product runs at
    a random time between its issue and the wgmma.wait_group that covers it, reading shared memory
    and registers then;
  * mbarrier phases (9.7.13.15: pending arrivals, tx-count, try_wait.parity on the current or the
    immediately preceding phase) and named barriers (bar.sync with a thread count).

A random scheduler interleaves the producer, the two consumer warpgroups, the TMA engine and the
tensor cores. Checked: the output against a float64 reference (bf16 tolerance), NaN anywhere
(shared memory starts as NaN, so a read of a slot nobody wrote shows up), a TMA or generic write to
shared memory that an issued-but-unfinished wgmma still has to read (a race), and deadlock (nothing
can move while work remains).

    python3 benchmarks/attention/emulate_sm90.py              the cases (about a minute; exit 1 on a failure)
    python3 benchmarks/attention/emulate_sm90.py --self-test  also checks that each deliberate index or
                                                              protocol mistake in MUTATIONS is caught
Keep this file in step with the kernel: the mirrored lines carry the kernel's names.
"""
import math
import random
import sys

import numpy as np

LOG2E = 1.4426950408889634

# ---- the kernel's constants ----
HEAD_DIM = 128
BLOCK_M = 128
BLOCK_N = 128
PANEL_COLS = 64
PANELS = HEAD_DIM // PANEL_COLS
PANEL_BYTES = BLOCK_N * 128
TILE_BYTES = PANELS * PANEL_BYTES
WARPGROUP_ROW_BYTES = 64 * 128
CONSUMER_WARPS = 8

MUTATION = None  # set by --self-test: one deliberate mistake at a time


class Layout:
    def __init__(self, stages):
        self.stages = stages
        self.q = 0
        self.barriers = TILE_BYTES + 2 * TILE_BYTES * stages

    def k_tile(self, s):
        return TILE_BYTES + 2 * TILE_BYTES * s

    def v_tile(self, s):
        return self.k_tile(s) + TILE_BYTES


def bf16(x):
    a = np.asarray(x, dtype=np.float32).copy()
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


def swizzle128(addr):
    addr = np.asarray(addr, dtype=np.int64)
    return addr ^ (((addr >> 7) & 7) << 4)


class Violation(Exception):
    pass


# ---- hardware models ----

class Smem:
    """Shared memory as 2-byte slots (NaN until written), with the byte ranges each unfinished
    wgmma will read, to catch writes under them."""

    def __init__(self, nbytes, data_limit):
        self.slots = np.full(nbytes // 2, np.nan, np.float32)
        self.data_limit = data_limit
        self.pending_reads = []  # (owner, lo, hi) byte ranges

    def write(self, byte_addrs, values, who):
        byte_addrs = np.asarray(byte_addrs).ravel()
        if byte_addrs.min() < 0 or byte_addrs.max() + 2 > self.data_limit:
            raise Violation(f'{who}: write outside the data region')
        for owner, lo, hi in self.pending_reads:
            if ((byte_addrs >= lo) & (byte_addrs < hi)).any():
                raise Violation(f'{who}: writes [{lo}, {hi}) while a wgmma of {owner} still has to read it')
        self.slots[byte_addrs // 2] = np.asarray(values, np.float32).ravel()

    def read(self, byte_addrs):
        byte_addrs = np.asarray(byte_addrs)
        if byte_addrs.min() < 0 or byte_addrs.max() + 2 > self.data_limit:
            raise Violation('read outside the data region')
        return self.slots[byte_addrs // 2]


class MBarrier:
    def __init__(self, name, arrivals):
        self.name, self.expected, self.pending, self.tx, self.phase = name, arrivals, arrivals, 0, 0

    def _complete_if_done(self):
        if self.pending == 0 and self.tx == 0:
            self.phase += 1
            self.pending = self.expected

    def arrive(self, expect_tx=0):
        self.tx += expect_tx
        self.pending -= 1
        if self.pending < 0:
            raise Violation(f'{self.name}: more arrivals than expected')
        self._complete_if_done()

    def complete_tx(self, nbytes):
        self.tx -= nbytes
        self._complete_if_done()

    def try_wait(self, parity):
        # complete iff `parity` names the immediately preceding phase (the current one is never complete)
        return parity != (self.phase & 1)


def matrix_descriptor(start, leading, stride):
    # the kernel's bit packing (9.7.15.5.1.2.2)
    return ((start & 0x3FFFF) >> 4) | ((leading & 0x3FFFF) >> 4) << 16 | ((stride & 0x3FFFF) >> 4) << 32 | 1 << 62


def k_major_descriptor(start):
    return matrix_descriptor(start, 16, 1024)


def n_major_descriptor(start):
    leading = 1024 if MUTATION == 'v-leading-offset' else PANEL_BYTES
    return matrix_descriptor(start, leading, 1024)


def decode_descriptor(desc):
    start = (desc & 0x3FFF) << 4
    lbo = ((desc >> 16) & 0x3FFF) << 4
    sbo = ((desc >> 32) & 0x3FFF) << 4
    base_offset = (desc >> 49) & 7
    mode = (desc >> 62) & 3
    if mode != 1 or base_offset != 0:
        raise Violation('descriptor is not 128-byte swizzle with base offset 0')
    if start % 16:
        raise Violation('descriptor start not 16-byte aligned')
    return start, lbo, sbo


def k_major_addresses(desc, rows):
    """Byte addresses of a [rows, 16] operand, K-major, 128B swizzle: ((8,m),(T,2k)):((8T,SBO),(1,T))
    -> row r at (r%8)*128 + (r//8)*SBO, element k at 2k bytes (16 elements = 32 bytes, inside the
    swizzle span: LBO unused)."""
    start, _, sbo = decode_descriptor(desc)
    r = np.arange(rows)[:, None]
    k = np.arange(16)[None, :]
    return swizzle128(start + (r % 8) * 128 + (r // 8) * sbo + 2 * k)


def n_major_addresses(desc, k_rows=16, n_cols=128):
    """Byte addresses of a [16, 128] operand B, N-major, 128B swizzle: ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))
    -> column n at 2(n%64) + (n//64)*LBO, row k at (k%8)*128 + (k//8)*SBO."""
    start, lbo, sbo = decode_descriptor(desc)
    k = np.arange(k_rows)[:, None]
    n = np.arange(n_cols)[None, :]
    return swizzle128(start + (k % 8) * 128 + (k // 8) * sbo + 2 * (n % 64) + (n // 64) * lbo)


# Fragment layouts of m64nNk16 (9.7.15.5.1.1.1), thread tid of the warpgroup.
TID = np.arange(128)
WARP, LANE = TID // 32, TID % 32
G, T = LANE // 4, LANE % 4
_I = np.arange(64)
ACC_ROW = 16 * WARP[:, None] + G[:, None] + 8 * ((_I[None, :] % 4) // 2)   # accumulator d[i]
ACC_COL = 8 * (_I[None, :] // 4) + 2 * T[:, None] + (_I[None, :] % 2)
_R = np.arange(4)[None, :, None]
_H = np.arange(2)[None, None, :]
A_ROW = 16 * WARP[:, None, None] + G[:, None, None] + 8 * (_R % 2)          # A register r, half h
A_COL = 2 * T[:, None, None] + _H + 8 * (_R // 2)


def acc_to_matrix(d):
    m = np.zeros((64, 128), np.float64)
    m[ACC_ROW, ACC_COL] = d
    return m


def matrix_to_acc(m):
    return m[ACC_ROW, ACC_COL].astype(np.float32)


def shfl_xor(v, mask):
    return v[(TID & ~31) | ((TID & 31) ^ mask)]


class TensorMap:
    """A [slabs, rows, 128] tensor as the kernel's 3-D tensor map, box {64, 128, 1}."""

    def __init__(self, tensor):
        self.t = tensor

    def box(self, column, row, slab):
        out = np.zeros((BLOCK_N, PANEL_COLS), np.float32)
        rows = np.arange(row, row + BLOCK_N)
        inside = (rows >= 0) & (rows < self.t.shape[1])
        if 0 <= slab < self.t.shape[0]:
            out[inside] = self.t[slab, rows[inside], column:column + PANEL_COLS]
        return out


class Machine:
    """The CTA's asynchronous units and the scheduler that interleaves them with the agents."""

    def __init__(self, layout, rng):
        self.layout = layout
        self.smem = Smem(layout.barriers + 1024, layout.barriers)
        self.rng = rng
        self.tma = []                 # pending copies: (dst, box, barrier)
        self.groups = {0: [], 1: []}  # per consumer: committed groups, each a list of pending products
        self.uncommitted = {0: [], 1: []}
        self.named = {}               # bar id -> threads arrived
        self.named_generation = {}

    # TMA: the copy lands later; the bytes were announced by arrive.expect_tx
    def tma_load(self, dst, tensor_map, barrier, column, row, slab):
        if dst % 1024:
            raise Violation('TMA destination not 1024-byte aligned (the swizzle would not match wgmma)')
        self.tma.append((dst, tensor_map.box(column, row, slab), barrier))

    def _land_tma(self, index):
        dst, box, barrier = self.tma.pop(index)
        r = np.arange(BLOCK_N)[:, None]
        c = np.arange(PANEL_COLS)[None, :]
        self.smem.write(swizzle128(dst + r * 128 + c * 2), box, 'TMA')
        barrier.complete_tx(box.size * 2)

    def issue(self, consumer, product):
        product.register(self.smem, consumer)
        self.uncommitted[consumer].append(product)

    def commit(self, consumer):
        self.groups[consumer].append(self.uncommitted[consumer])
        self.uncommitted[consumer] = []

    def pending_groups(self, consumer):
        return sum(1 for g in self.groups[consumer] if g)

    def _run_product(self, consumer):
        for group in self.groups[consumer]:
            if group:
                product = group.pop(0)
                product.run(self.smem)
                break
        while self.groups[consumer] and not self.groups[consumer][0]:
            self.groups[consumer].pop(0)

    def run(self, agents, max_steps=10_000_000):
        """agents: generators yielding a predicate that must hold before they continue."""
        waiting = {i: (lambda: True) for i in range(len(agents))}
        live = set(range(len(agents)))
        for _ in range(max_steps):
            choices = [('agent', i) for i in live if waiting[i]()]
            choices += [('tma', i) for i in range(len(self.tma))]
            choices += [('mma', c) for c in (0, 1) if any(self.groups[c])]
            if not choices:
                if live:
                    raise Violation(f'deadlock: agents {sorted(live)} wait and no copy or product is pending')
                return
            kind, i = self.rng.choice(choices)
            if kind == 'tma':
                self._land_tma(i)
            elif kind == 'mma':
                self._run_product(i)
            else:
                try:
                    waiting[i] = next(agents[i])
                except StopIteration:
                    live.discard(i)
        raise Violation('step limit reached')


class Product:
    """One wgmma.mma_async m64n128k16: runs (reads shared memory and registers) when the scheduler
    says so, between issue and the wait that covers it."""

    def __init__(self, acc, desc_a=None, a_source=None, desc_b=0, scale_d=1, n_major=False):
        self.acc, self.desc_a, self.a_source, self.desc_b, self.scale_d, self.n_major = acc, desc_a, a_source, desc_b, scale_d, n_major

    def addresses(self):
        a = k_major_addresses(self.desc_a, 64) if self.desc_a is not None else None
        b = n_major_addresses(self.desc_b) if self.n_major else k_major_addresses(self.desc_b, 128)
        return a, b

    def register(self, smem, consumer):
        # the 128-byte rows this product will read, as (lo, hi) byte ranges
        self.ranges = sorted({(int(x) & ~127, (int(x) & ~127) + 128) for part in self.addresses() if part is not None
                              for x in part.ravel()})
        self.owner = consumer
        for lo, hi in self.ranges:
            smem.pending_reads.append((consumer, lo, hi))

    def run(self, smem):
        for lo, hi in self.ranges:
            smem.pending_reads.remove((self.owner, lo, hi))
        a_addr, b_addr = self.addresses()
        if a_addr is not None:
            a = smem.read(a_addr).astype(np.float64)                    # [64 (M), 16 (K)]
        else:
            a = np.zeros((64, 16), np.float64)
            a[A_ROW, A_COL] = self.a_source()  # [128 threads, 4 registers, 2 halves]
        if self.n_major:
            b = smem.read(b_addr).astype(np.float64)                    # [16 (K), 128 (N)]
        else:
            b = smem.read(b_addr).astype(np.float64).T                  # [128 (N), 16 (K)] -> [K, N]
        d = (acc_to_matrix(self.acc) if self.scale_d else 0.0) + a @ b
        self.acc[:] = matrix_to_acc(d)


# ---- the kernel, mirrored ----

def producer(m, L, maps, params, barriers, n_tiles, m0, q_slab, kv_slab):
    q_map, k_map, v_map = maps
    full_q, full_k, full_v, empty_k, empty_v = barriers
    full_q.arrive(expect_tx=TILE_BYTES)
    for panel in range(PANELS):
        column = panel * (32 if MUTATION == 'q-panel-column' else PANEL_COLS)
        m.tma_load(L.q + panel * PANEL_BYTES, q_map, full_q, column, m0, q_slab)
    yield lambda: True
    for tile in range(n_tiles):
        stage = tile % L.stages
        parity = ((tile // L.stages) & 1) ^ 1
        yield (lambda s=stage, p=parity: empty_k[s].try_wait(p))
        full_k[stage].arrive(expect_tx=TILE_BYTES)
        for panel in range(PANELS):
            m.tma_load(L.k_tile(stage) + panel * PANEL_BYTES, k_map, full_k[stage], panel * PANEL_COLS, tile * BLOCK_N, kv_slab)
        yield (lambda s=stage, p=parity: empty_v[s].try_wait(p))
        full_v[stage].arrive(expect_tx=TILE_BYTES)
        for panel in range(PANELS):
            m.tma_load(L.v_tile(stage) + panel * PANEL_BYTES, v_map, full_v[stage], panel * PANEL_COLS, tile * BLOCK_N, kv_slab)


class Regs:
    """A consumer warpgroup's registers: 128 lanes x the kernel's arrays."""

    def __init__(self):
        self.o = np.zeros((128, 64), np.float32)
        self.s = np.zeros((128, 64), np.float32)
        self.pf = np.zeros((128, 32, 2), np.float32)  # bf16 pairs, (low, high)
        self.row_max = np.full((128, 2), -np.inf, np.float32)
        self.row_sum = np.zeros((128, 2), np.float32)


def qk_gemm(m, consumer, regs, q_rows, k_tile):
    for kk in range(HEAD_DIM // 16):
        step = 16 if MUTATION == 'k-step-16-bytes' else 32
        offset = (kk // 4) * PANEL_BYTES + (kk % 4) * step
        m.issue(consumer, Product(regs.s, desc_a=k_major_descriptor(q_rows + offset),
                                  desc_b=k_major_descriptor(k_tile + offset), scale_d=1 if kk > 0 else 0))


def pv_gemm(m, consumer, regs, v_tile):
    for kk in range(BLOCK_N // 16):
        # the A fragment is read from the live registers when the product runs, as the hardware does
        a_source = (lambda kk=kk: regs.pf[:, 4 * kk:4 * kk + 4, :])
        m.issue(consumer, Product(regs.o, a_source=a_source, desc_b=n_major_descriptor(v_tile + kk * 16 * 128), n_major=True))


def softmax_update(regs, n0, visible, scale_log2):
    s = regs.s
    if n0 + BLOCK_N > visible:
        i = np.arange(64)[None, :]
        key = n0 + 8 * (i // 4) + 2 * T[:, None] + (i & 1)
        masked = key > visible if MUTATION == 'mask-off-by-one' else key >= visible
        s[masked] = -np.inf
    correction = np.zeros((128, 2), np.float32)
    for r in range(2):
        mx = regs.row_max[:, r].copy()
        for c in range(16):
            mx = np.maximum(mx, np.maximum(s[:, 4 * c + 2 * r], s[:, 4 * c + 2 * r + 1]))
        mx = np.maximum(mx, shfl_xor(mx, 1))
        mx = np.maximum(mx, shfl_xor(mx, 4 if MUTATION == 'quad-xor-4' else 2))
        ref = np.where(mx == -np.inf, 0.0, mx * np.float32(scale_log2)).astype(np.float32)
        with np.errstate(invalid='ignore'):
            correction[:, r] = np.exp2(regs.row_max[:, r] * np.float32(scale_log2) - ref)
        regs.row_max[:, r] = mx
        total = np.zeros(128, np.float32)
        for c in range(16):
            for e in range(2):
                x = s[:, 4 * c + 2 * r + e]
                x = np.exp2((x.astype(np.float64) * scale_log2 - ref).astype(np.float32))
                s[:, 4 * c + 2 * r + e] = x
                total += x
        regs.row_sum[:, r] = regs.row_sum[:, r] * correction[:, r] + total
    return correction


def rescale(regs, correction):
    regs.o *= correction[:, (np.arange(64) >> 1) & 1]


def pack_p(regs):
    pairs = regs.s.reshape(128, 32, 2)
    if MUTATION == 'p-pack-swapped':
        pairs = pairs[:, :, ::-1]
    regs.pf[:] = bf16(pairs)


def zero_v_rows(m, v_tile, first_row):
    rows = np.arange(first_row, BLOCK_N)
    if rows.size == 0:
        return
    for panel in range(PANELS):
        addrs = v_tile + panel * PANEL_BYTES + rows[:, None] * 128 + np.arange(0, 128, 2)[None, :]
        m.smem.write(addrs, np.zeros(addrs.shape, np.float32), 'zero_v_rows')


def named_barrier(m, bar_id, threads, count):
    """bar.sync for `threads` threads of a `count`-thread barrier; yields until it completes."""
    generation = m.named_generation.get(bar_id, 0)
    m.named[bar_id] = m.named.get(bar_id, 0) + threads
    if m.named[bar_id] == count:
        m.named[bar_id] = 0
        m.named_generation[bar_id] = generation + 1
    yield (lambda: m.named_generation.get(bar_id, 0) > generation)


def consumer_wg(m, L, consumer, params, barriers, turn, n_tiles, visible, m0, b, h, out, schedule):
    full_q, full_k, full_v, empty_k, empty_v = barriers
    regs = Regs()
    q_rows = L.q + consumer * WARPGROUP_ROW_BYTES
    overlap, pingpong = schedule in ('overlap', 'pingpong'), schedule == 'pingpong'
    rounds = [0]

    def take():
        if pingpong:
            parity = rounds[0] & 1
            yield (lambda: turn[consumer].try_wait(parity))

    def give():
        if pingpong:
            for _ in range(4):
                turn[1 - consumer].arrive()
            rounds[0] += 1

    def release(bar):
        for _ in range(4):  # lane 0 of each of the warpgroup's 4 warps
            bar.arrive()

    def wait_group(n):
        yield (lambda: m.pending_groups(consumer) <= n)

    if pingpong and consumer == 1 and MUTATION != 'turn-no-first-grant':
        for _ in range(4):
            turn[0].arrive()
    zero_last_v = visible < params['kv_len_max']
    stage_of = lambda tile: tile % L.stages
    parity_of = lambda tile: ((tile // L.stages) + (1 if MUTATION == 'full-parity' else 0)) & 1

    yield (lambda: full_q.try_wait(0))
    if n_tiles > 0:
        if not overlap:
            for tile in range(n_tiles):
                stage = stage_of(tile)
                yield (lambda s=stage, p=parity_of(tile): full_k[s].try_wait(p))
                qk_gemm(m, consumer, regs, q_rows, L.k_tile(stage))
                m.commit(consumer)
                if MUTATION == 'release-before-wait':
                    release(empty_k[stage])
                yield from wait_group(0)
                if MUTATION != 'release-before-wait':
                    release(empty_k[stage])
                corr = softmax_update(regs, tile * BLOCK_N, visible, params['scale_log2'])
                rescale(regs, corr)
                pack_p(regs)
                yield (lambda s=stage, p=parity_of(tile): full_v[s].try_wait(p))
                if tile == n_tiles - 1 and zero_last_v and MUTATION != 'no-v-zeroing':
                    zero_v_rows(m, L.v_tile(stage), visible - tile * BLOCK_N)
                    yield from named_barrier(m, 1, 128, 256)
                pv_gemm(m, consumer, regs, L.v_tile(stage))
                m.commit(consumer)
                yield from wait_group(0)
                release(empty_v[stage])
        else:
            yield (lambda: full_k[0].try_wait(parity_of(0)))
            yield from take()
            qk_gemm(m, consumer, regs, q_rows, L.k_tile(0))
            m.commit(consumer)
            give()
            yield from wait_group(0)
            release(empty_k[0])
            softmax_update(regs, 0, visible, params['scale_log2'])
            pack_p(regs)
            for tile in range(1, n_tiles):
                stage, previous = stage_of(tile), stage_of(tile - 1)
                yield (lambda s=stage, p=parity_of(tile): full_k[s].try_wait(p))
                yield (lambda s=previous, p=parity_of(tile - 1): full_v[s].try_wait(p))
                yield from take()
                qk_gemm(m, consumer, regs, q_rows, L.k_tile(stage))
                m.commit(consumer)
                pv_gemm(m, consumer, regs, L.v_tile(previous))
                m.commit(consumer)
                give()
                yield from wait_group(1)
                release(empty_k[stage])
                corr = softmax_update(regs, tile * BLOCK_N, visible, params['scale_log2'])
                if MUTATION == 'pack-before-wait':
                    pack_p(regs)
                yield from wait_group(0)
                release(empty_v[previous])
                rescale(regs, corr)
                if MUTATION != 'pack-before-wait':
                    pack_p(regs)
            last = n_tiles - 1
            yield (lambda s=stage_of(last), p=parity_of(last): full_v[s].try_wait(p))
            if zero_last_v and MUTATION != 'no-v-zeroing':
                zero_v_rows(m, L.v_tile(stage_of(last)), visible - last * BLOCK_N)
                yield from named_barrier(m, 1, 128, 256)
            yield from take()
            pv_gemm(m, consumer, regs, L.v_tile(stage_of(last)))
            m.commit(consumer)
            give()
            yield from wait_group(0)
            release(empty_v[stage_of(last)])

    # epilogue
    inv = np.zeros((128, 2), np.float32)
    for r in range(2):
        total = regs.row_sum[:, r].copy()
        total = total + shfl_xor(total, 1)
        total = total + shfl_xor(total, 2)
        inv[:, r] = np.where(total > 0, 1.0 / np.where(total > 0, total, 1), 0.0)
    yield from named_barrier(m, 2 + consumer, 128, 128)
    for c in range(16):
        for r in range(2):
            row = 16 * WARP + G + (4 if MUTATION == 'epilogue-row' else 8) * r
            chunk = (c % 8) ^ (row % 8)
            at = q_rows + (c // 8) * PANEL_BYTES + row * 128 + chunk * 16 + T * 4
            lo = bf16(regs.o[:, 4 * c + 2 * r] * inv[:, r])
            hi = bf16(regs.o[:, 4 * c + 2 * r + 1] * inv[:, r])
            m.smem.write(np.stack([at, at + 2], 1), np.stack([lo, hi], 1), 'epilogue staging')
    yield from named_barrier(m, 2 + consumer, 128, 128)
    heads, q_len = params['heads'], params['q_len']
    for i in range(64 * 16):
        row, c = i // 16, i % 16
        query = m0 + (0 if MUTATION == 'store-row-offset' else 64 * consumer) + row
        if query < q_len:
            chunk = c % 8 if MUTATION == 'staging-unswizzled' else (c % 8) ^ (row % 8)
            at = q_rows + (c // 8) * PANEL_BYTES + row * 128 + chunk * 16
            out[b, query, h, c * 8:c * 8 + 8] = m.smem.read(at + 2 * np.arange(8))


def run_cta(q, k, v, kv_len, out, block, schedule, stages, rng):
    B, H, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    gx, h, b = block
    L = Layout(stages)
    m = Machine(L, rng)
    params = dict(q_len=Nq, kv_len_max=Nk, heads=H, group=H // Hkv, scale_log2=(1 / math.sqrt(D)) * LOG2E)
    maps = (TensorMap(q.reshape(B * H, Nq, D)), TensorMap(k.reshape(B * Hkv, Nk, D)), TensorMap(v.reshape(B * Hkv, Nk, D)))
    m0 = gx * BLOCK_M
    q_slab = b * H + h
    kv_slab = b * (H // params['group']) + h // params['group']
    visible = min(Nk, max(int(kv_len[b]), 0)) if kv_len is not None else Nk
    n_tiles = (visible + BLOCK_N - 1) // BLOCK_N
    full_q = MBarrier('full_q', 1)
    full_k = [MBarrier(f'full_k{s}', 1) for s in range(stages)]
    full_v = [MBarrier(f'full_v{s}', 1) for s in range(stages)]
    empty_k = [MBarrier(f'empty_k{s}', CONSUMER_WARPS) for s in range(stages)]
    empty_v = [MBarrier(f'empty_v{s}', CONSUMER_WARPS) for s in range(stages)]
    turn = [MBarrier('turn0', 4), MBarrier('turn1', 4)]
    barriers = (full_q, full_k, full_v, empty_k, empty_v)
    agents = [producer(m, L, maps, params, barriers, n_tiles, m0, q_slab, kv_slab)]
    agents += [consumer_wg(m, L, c, params, barriers, turn, n_tiles, visible, m0, b, h, out, schedule) for c in (0, 1)]
    m.run(agents)
    if m.tma or any(m.groups[0]) or any(m.groups[1]):
        raise Violation('the CTA ended with copies or products still pending')


def flash_sm90(q, k, v, kv_len, schedule, stages, seed):
    B, H, Nq, D = q.shape
    rng = random.Random(seed)
    out = np.full((B, Nq, H, D), np.nan, np.float32)
    for b in range(B):
        for h in range(H):
            for gx in range((Nq + BLOCK_M - 1) // BLOCK_M):
                run_cta(q, k, v, kv_len, out, (gx, h, b), schedule, stages, rng)
    return out


def reference(q, k, v, kv_len):
    B, H, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    out = np.zeros((B, Nq, H, D))
    for b in range(B):
        last = min(Nk, max(0, int(kv_len[b]))) if kv_len is not None else Nk
        if last == 0:
            continue
        for h in range(H):
            hk = h // (H // Hkv)
            s = q[b, h] @ k[b, hk, :last].T / math.sqrt(D)
            p = np.exp(s - s.max(1, keepdims=True))
            out[b, :, h] = p @ v[b, hk, :last] / p.sum(1, keepdims=True)
    return out


def rel(a, r):
    return float(np.linalg.norm((a - r).ravel()) / max(np.linalg.norm(r.ravel()), 1e-30))


def case(name, B, H, Hkv, Nq, Nk, kv_len=None, nan_pad=False, seed=0, schedules=('serial', 'overlap', 'pingpong'), stages=(2, 3), quiet=False):
    rng = np.random.default_rng(seed)
    q = bf16(rng.standard_normal((B, H, Nq, HEAD_DIM)) * 1.5)
    k = bf16(rng.standard_normal((B, Hkv, Nk, HEAD_DIM)))
    v = bf16(rng.standard_normal((B, Hkv, Nk, HEAD_DIM)))
    kl = np.array(kv_len, np.int32) if kv_len is not None else None
    ref = reference(q, k, v, kl)
    if nan_pad and kl is not None:
        for b in range(B):
            k[b, :, max(int(kl[b]), 0):] = np.nan
            v[b, :, max(int(kl[b]), 0):] = np.nan
    tol = 2 * rel(bf16(ref), ref) + 1e-3
    ok = True
    for schedule in schedules:
        for st in stages:
            try:
                got = flash_sm90(q, k, v, kl, schedule, st, seed * 100 + st)
                err = rel(got, ref)
                good = bool(np.isfinite(got).all()) and err <= tol
                detail = f'rel {err:.2e} (tolerance {tol:.2e})'
            except Violation as violation:
                good, detail = False, f'violation: {violation}'
            if not quiet:
                print(f"{'ok  ' if good else 'FAIL'} {name} [{schedule}, {st} stages]: {detail}", flush=True)
            ok = ok and good
    return ok


CASES = [
    dict(name='N=1', B=1, H=1, Hkv=1, Nq=1, Nk=1, seed=1),
    dict(name='N=127, kv_len [127, 50], both batch items', B=2, H=1, Hkv=1, Nq=127, Nk=127, kv_len=[127, 50], seed=2),
    dict(name='N=300 (3 key tiles, partial last), kv_len [300, 129]', B=2, H=1, Hkv=1, Nq=300, Nk=300, kv_len=[300, 129], seed=3),
    dict(name='200 queries over 520 keys (5 tiles: the ring wraps), GQA 2/1', B=1, H=2, Hkv=1, Nq=200, Nk=520, seed=4),
    dict(name='cross-attention 130 x 397 keys, kv_len [397, 250], NaN padding', B=2, H=1, Hkv=1, Nq=130, Nk=397, kv_len=[397, 250], nan_pad=True, seed=5),
    dict(name='kv_len [0, 256 (tile edge)], NaN padding', B=2, H=1, Hkv=1, Nq=70, Nk=300, kv_len=[0, 256], nan_pad=True, seed=6),
    dict(name='kv_len [-3, 1000 (> Nk)]', B=2, H=1, Hkv=1, Nq=9, Nk=140, kv_len=[-3, 1000], seed=7),
]

# Each deliberate mistake and a case it must break (all schedules / stages of that case run).
MUTATIONS = {
    'k-step-16-bytes': 'N=127, kv_len [127, 50], both batch items',               # QK k-step advance 16 B, not 32
    'v-leading-offset': 'N=127, kv_len [127, 50], both batch items',              # V descriptor LBO 1 KiB, not the panel
    'epilogue-row': 'N=127, kv_len [127, 50], both batch items',                  # accumulator row g + 4r, not g + 8r
    'quad-xor-4': 'N=300 (3 key tiles, partial last), kv_len [300, 129]',         # row max over lanes ^1, ^4
    'p-pack-swapped': 'N=127, kv_len [127, 50], both batch items',                # P pairs (hi, lo)
    'mask-off-by-one': 'N=300 (3 key tiles, partial last), kv_len [300, 129]',    # key > visible
    'q-panel-column': 'N=127, kv_len [127, 50], both batch items',                # Q panel 1 from column 32 (N=1 cannot see Q)
    'store-row-offset': 'N=300 (3 key tiles, partial last), kv_len [300, 129]',   # second warpgroup's rows lost
    'staging-unswizzled': 'N=127, kv_len [127, 50], both batch items',            # epilogue reads without the XOR
    'no-v-zeroing': 'cross-attention 130 x 397 keys, kv_len [397, 250], NaN padding',
    'full-parity': 'N=300 (3 key tiles, partial last), kv_len [300, 129]',        # consumer waits the wrong phase
    'release-before-wait': '200 queries over 520 keys (5 tiles: the ring wraps), GQA 2/1',  # stage freed under a wgmma
    'pack-before-wait': '200 queries over 520 keys (5 tiles: the ring wraps), GQA 2/1',     # P overwritten under P·V
    'turn-no-first-grant': 'N=1',                                                 # pingpong never starts
}


def main():
    global MUTATION
    results = [case(**c) for c in CASES]
    ok = all(results)
    if '--self-test' in sys.argv:
        by_name = {c['name']: c for c in CASES}
        for mutation, target in MUTATIONS.items():
            MUTATION = mutation
            spec = dict(by_name[target])
            if mutation in ('turn-no-first-grant',):
                spec['schedules'] = ('pingpong',)
            if mutation in ('release-before-wait',):
                spec['schedules'] = ('serial',)
            if mutation in ('pack-before-wait',):
                spec['schedules'] = ('overlap', 'pingpong')
            caught = not case(**spec, quiet=True)
            print(f"{'ok  ' if caught else 'FAIL'} mutation {mutation}: {'caught' if caught else 'NOT caught'} by '{target}'", flush=True)
            ok = ok and caught
        MUTATION = None
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
