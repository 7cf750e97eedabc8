// Seeded Gaussian noise: a counter-based generator (Philox4x32-10, Salmon et al., SC'11) followed
// by Box-Muller. Element i of a stream is a pure function of (seed, i), so the CPU and CUDA
// backends produce the same values, in any order and in any chunking.
//
// Bit-identical f32 on both backends: the integer math is exact, and the float formulas below use
// only operations that IEEE 754 rounds exactly the same way on the host and the device (explicit
// fused multiply-add, round-to-nearest division and square root, exact scalings by powers of two),
// never the platforms' own logf/sinf/cosf, whose last bits differ. The header is compiled by both
// compilers (host and device), so both run literally the same code.
#pragma once
#include <cstdint>
#include <cstring>

#include <cmath>

#include "exec_context.h"
#include "tensor_ref.h"

#ifdef __CUDACC__
#define SV_HOST_DEVICE __host__ __device__
#else
#define SV_HOST_DEVICE
#endif

namespace sv {

// out (any float dtype on CUDA, f32 on the CPU) receives elements [offset, offset + numel) of the
// standard-normal stream of `seed`, rounded once from f32 to out's dtype.
struct RandomNormalArgs {
  TensorRef out;
  uint64_t seed = 0;
  uint64_t offset = 0;
};

namespace philox {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule increments

struct Block {
  uint32_t v[4];
};

// Philox4x32 with 10 rounds on counter c under key k (the Random123 definition).
SV_HOST_DEVICE inline Block philox4x32_10(Block c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; round++) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c.v[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c.v[2];
    const Block next = {{static_cast<uint32_t>(p1 >> 32) ^ c.v[1] ^ k0, static_cast<uint32_t>(p1),
                         static_cast<uint32_t>(p0 >> 32) ^ c.v[3] ^ k1, static_cast<uint32_t>(p0)}};
    c = next;
  }
  return c;
}

// The words of stream block b = element index / 4: counter (b_lo, b_hi, 0, 0), key = seed.
SV_HOST_DEVICE inline Block stream_block(uint64_t seed, uint64_t block) {
  const Block counter = {{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// ---- IEEE-exact float primitives (identical on host and device, whatever the contraction flags) ----

SV_HOST_DEVICE inline float fma_rn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
SV_HOST_DEVICE inline float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
SV_HOST_DEVICE inline float sqrt_rn(float a) {
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
SV_HOST_DEVICE inline float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);  // never contracted into an FMA
#else
  return a * b;  // only ever feeds an fma_rn operand, a sqrt or a final result: nothing to contract
#endif
}
SV_HOST_DEVICE inline uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
SV_HOST_DEVICE inline float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// Natural log of u in [2^-24, 1] (a normal float), within about 2 ulp.
// u = m·2^e with m in [√½, √2]; log m = 2·atanh(s), s = (m-1)/(m+1), |s| <= 0.172, by its series
// 2s·(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9 + s¹⁰/11); the next term is below 2e-9 relative.
SV_HOST_DEVICE inline float log_unit(float u) {
  const uint32_t bits = float_bits(u);
  int e = static_cast<int>(bits >> 23) - 127;
  float m = bits_float((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  if (m > 1.41421356f) {
    m = mul_rn(m, 0.5f);  // exact
    e += 1;
  }
  const float f = m - 1.0f;  // exact (Sterbenz)
  const float s = div_rn(f, 2.0f + f);
  const float z = mul_rn(s, s);
  float poly = fma_rn(z, 1.0f / 11.0f, 1.0f / 9.0f);
  poly = fma_rn(z, poly, 1.0f / 7.0f);
  poly = fma_rn(z, poly, 1.0f / 5.0f);
  poly = fma_rn(z, poly, 1.0f / 3.0f);
  const float two_s = mul_rn(s, 2.0f);  // exact
  const float log_m = fma_rn(mul_rn(two_s, z), poly, two_s);
  // e·ln2 in two parts: the high part has 16 significant bits, so e·hi is exact for |e| <= 128.
  const float ef = static_cast<float>(e);
  return fma_rn(ef, 0.693145751953125f, fma_rn(ef, 1.42860682028622680e-6f, log_m));
}

// sin and cos of 2π·k/2^24 for an integer k in [0, 2^24), within about 2 ulp. The argument is
// reduced exactly in integers: k = q·2^22 + j with |j| <= 2^21, angle = (π/2)·(q + r), r = j/2^22
// in [-½, ½]; then Taylor polynomials in r with coefficients (π/2)^n/n! (|(π/2)·r| <= π/4: the
// first omitted terms are below 3e-9).
SV_HOST_DEVICE inline void sincos_turns24(uint32_t k, float* sin_out, float* cos_out) {
  const uint32_t q = (k + (1u << 21)) >> 22;  // 0..4
  const int32_t j = static_cast<int32_t>(k) - static_cast<int32_t>(q << 22);
  const float r = mul_rn(static_cast<float>(j), 2.384185791015625e-7f);  // j / 2^22, exact
  const float w = mul_rn(r, r);
  float ps = fma_rn(w, 1.60441184762e-4f, -4.68175413532e-3f);  // (π/2)^9/9!, -(π/2)^7/7!
  ps = fma_rn(w, ps, 7.96926262461e-2f);                          // (π/2)^5/5!
  ps = fma_rn(w, ps, -6.45964097506e-1f);                         // -(π/2)^3/3!
  ps = fma_rn(w, ps, 1.57079632679e+0f);                          // π/2
  const float sin_r = mul_rn(r, ps);
  float pc = fma_rn(w, -2.52020423731e-5f, 9.19260274839e-4f);    // -(π/2)^10/10!, (π/2)^8/8!
  pc = fma_rn(w, pc, -2.08634807634e-2f);                         // -(π/2)^6/6!
  pc = fma_rn(w, pc, 2.53669507902e-1f);                          // (π/2)^4/4!
  pc = fma_rn(w, pc, -1.23370055014e+0f);                         // -(π/2)^2/2!
  const float cos_r = fma_rn(w, pc, 1.0f);
  switch (q & 3u) {
    case 0: *sin_out = sin_r; *cos_out = cos_r; break;
    case 1: *sin_out = cos_r; *cos_out = -sin_r; break;
    case 2: *sin_out = -sin_r; *cos_out = -cos_r; break;
    default: *sin_out = -cos_r; *cos_out = sin_r; break;
  }
}

// Box-Muller on two words: u1 = (a>>8 + 1)/2^24 in (0, 1], angle 2π·(b>>8)/2^24;
// z0 = √(-2 ln u1)·cos, z1 = √(-2 ln u1)·sin.
SV_HOST_DEVICE inline void box_muller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const float u1 = mul_rn(static_cast<float>((a >> 8) + 1u), 5.9604644775390625e-8f);  // exact
  const float radius = sqrt_rn(mul_rn(log_unit(u1), -2.0f));
  float s, c;
  sincos_turns24(b >> 8, &s, &c);
  *z0 = mul_rn(radius, c);
  *z1 = mul_rn(radius, s);
}

// The four normals of stream block `block`: lanes 0, 1 from words 0, 1; lanes 2, 3 from words 2, 3.
SV_HOST_DEVICE inline void normal4(uint64_t seed, uint64_t block, float out[4]) {
  const Block words = stream_block(seed, block);
  box_muller(words.v[0], words.v[1], &out[0], &out[1]);
  box_muller(words.v[2], words.v[3], &out[2], &out[3]);
}

}  // namespace philox

namespace cpu {
void random_normal(const ExecContext& ctx, const RandomNormalArgs& args);
}  // namespace cpu

namespace cuda {
void random_normal(const ExecContext& ctx, const RandomNormalArgs& args);
}  // namespace cuda

}  // namespace sv
