/* int8 activation quantization (phase 1 of the layers with int8 weights):
 * the quantize_fn variants of cc_kernels_internal.h, the portable one, on
 * x86-64 AVX2 and AVX-512 ones and on aarch64 a NEON one (cc_select_quantize
 * in cc_dispatch.c picks).
 * Every variant gives the same bytes: those of the double-precision rule
 * (round half to even of x * k in double, clamped to [-127, 127]).
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
#include "cc_kernels_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

CC_ALWAYS_INLINE void quantize_values_scalar(const float* x, int n, double k, int8_t* xq) {
  for (int r = 0; r < n; ++r) {
    double v = nearbyint((double)x[r] * k);
    v = v > 127.0 ? 127.0 : v < -127.0 ? -127.0 : v;
    xq[r] = (int8_t)v;
  }
}

/* The rows x blocks walk of every variant: block b of row r through
 * `block` (ibs values), its padding zeroed. Always inline, so `block` is
 * inlined into each variant; blocks outside, rows inside, so what `block`
 * derives from k[b] is computed once per block (a conv example is H*W rows
 * of a few short blocks). */
typedef void (*quantize_block_fn)(const float* x, int n, double k, int8_t* xq);
CC_ALWAYS_INLINE void quantize_rows(const float* x, size_t rows, int n_blocks, int ibs,
                                    const double* k, int8_t* xq, quantize_block_fn block) {
  const int padded = (ibs + 3) / 4 * 4;
  for (int b = 0; b < n_blocks; ++b) {
    if (k[b] == 0.0) continue;
    for (size_t r = 0; r < rows; ++r) {
      int8_t* qb = xq + (r * (size_t)n_blocks + (size_t)b) * padded;
      block(x + (r * (size_t)n_blocks + (size_t)b) * ibs, ibs, k[b], qb);
      for (int pad = ibs; pad < padded; ++pad) qb[pad] = 0;
    }
  }
}

void cc_quantize_default(const float* x, size_t rows, int n_blocks, int ibs, const double* k,
                         int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_values_scalar);
}

#if defined(__x86_64__) || defined(__i386__)
/* 4 values: float -> double, multiply, round half to even (the mode
 * nearbyint uses by default, here explicit), clamp; the integral doubles in
 * [-127, 127] convert to int32 exactly. */
CC_ALWAYS_INLINE __attribute__((target("avx2,fma"))) __m128i quantize4_avx2(const float* x,
                                                                            __m256d kv) {
  const __m256d hi = _mm256_set1_pd(127.0), lo = _mm256_set1_pd(-127.0);
  __m256d v = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x)), kv);
  v = _mm256_round_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_cvtpd_epi32(_mm256_min_pd(_mm256_max_pd(v, lo), hi));
}

/* One block: 16 values per step, then 8 (packed to bytes with saturation,
 * exact here), the rest one by one. */
CC_ALWAYS_INLINE __attribute__((target("avx2,fma"))) void quantize_block_avx2(const float* x, int n,
                                                                              double k,
                                                                              int8_t* xq) {
  const __m256d kv = _mm256_set1_pd(k);
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    __m128i q[4];
    for (int h = 0; h < 4; ++h) q[h] = quantize4_avx2(x + r + 4 * h, kv);
    const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
    _mm_storeu_si128((__m128i*)(void*)(xq + r), bytes);
  }
  if (r + 8 <= n) {
    const __m128i words = _mm_packs_epi32(quantize4_avx2(x + r, kv), quantize4_avx2(x + r + 4, kv));
    _mm_storel_epi64((__m128i*)(void*)(xq + r), _mm_packs_epi16(words, words));
    r += 8;
  }
  quantize_values_scalar(x + r, n - r, k, xq + r);
}

__attribute__((target("avx2,fma"))) void cc_quantize_avx2(const float* x, size_t rows, int n_blocks,
                                                          int ibs, const double* k, int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_block_avx2);
}
#define CC_QUANTIZE_AVX512_TARGET "avx512f,avx512vl,avx2,fma"

/* 8 values (the lanes of `lanes`; the others read as 0 and not stored). */
CC_ALWAYS_INLINE __attribute__((target(CC_QUANTIZE_AVX512_TARGET))) __m256i
quantize8_avx512(const float* x, __mmask8 lanes, __m512d kv) {
  const __m512d hi = _mm512_set1_pd(127.0), lo = _mm512_set1_pd(-127.0);
  __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, x)), kv);
  v = _mm512_roundscale_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(v, lo), hi));
}

/* 16 values in float32 when that gives the double path's bytes: y = x *
 * (float)k, clamped to [-128, 128], rounded half to even. With k a normal
 * float, y = x k (1 + e) with |e| <= 2^-23 + 2^-48 (two roundings), so for
 * |x k| <= 128 y is within 2^-16 of the exact product (and of its double
 * rounding) and rounds like it unless it is that close to a half-integer;
 * beyond 128 both clamp to +-127 (a subnormal y rounds to 0 like the
 * product). Returns 0 without storing when some value is within 2^-15 of a
 * half-integer: the caller takes the double path for those 16. */
CC_ALWAYS_INLINE __attribute__((target(CC_QUANTIZE_AVX512_TARGET))) int quantize16_float_avx512(
    const float* x, __m512 kf, int8_t* xq) {
  __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x), kf);
  y = _mm512_min_ps(_mm512_max_ps(y, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(128.0f));
  const __m512 r = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 distance = _mm512_abs_ps(_mm512_sub_ps(y, r)); /* exact; <= 0.5 */
  if (_mm512_cmp_ps_mask(distance, _mm512_set1_ps(0.5f - 0x1p-15f), _CMP_GE_OQ)) return 0;
  __m512i q = _mm512_cvtps_epi32(r);
  q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
  _mm_storeu_si128((__m128i*)(void*)xq, _mm512_cvtepi32_epi8(q));
  return 1;
}

/* One block: 16 values per step (in float32 where exact, see
 * quantize16_float_avx512; k outside the normal float range always takes
 * the double path), then 8 at a time in double, the last under a mask (8
 * doubles are one vector, as many steps as 8 floats take). */
CC_ALWAYS_INLINE __attribute__((target(CC_QUANTIZE_AVX512_TARGET))) void quantize_block_avx512(
    const float* x, int n, double k, int8_t* xq) {
  const __m512d kv = _mm512_set1_pd(k);
  /* Set up only where a 16-step runs: blocks of 8 (conv channel blocks)
   * are mostly this function's fixed cost. */
  const int float_ok = n >= 16 && k >= (double)FLT_MIN && k <= (double)FLT_MAX;
  const __m512 kf = _mm512_set1_ps(float_ok ? (float)k : 0.0f);
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    if (float_ok && quantize16_float_avx512(x + r, kf, xq + r)) continue;
    const __m256i q0 = quantize8_avx512(x + r, 0xff, kv),
                  q1 = quantize8_avx512(x + r + 8, 0xff, kv);
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    _mm_storeu_si128((__m128i*)(void*)(xq + r), _mm512_cvtepi32_epi8(both));
  }
  for (; r < n; r += 8) {
    const __mmask8 lanes = n - r >= 8 ? 0xff : (__mmask8)((1u << (n - r)) - 1u);
    _mm256_mask_cvtepi32_storeu_epi8(xq + r, lanes, quantize8_avx512(x + r, lanes, kv));
  }
}

__attribute__((target(CC_QUANTIZE_AVX512_TARGET))) void cc_quantize_avx512(
    const float* x, size_t rows, int n_blocks, int ibs, const double* k, int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_block_avx512);
}
#undef CC_QUANTIZE_AVX512_TARGET
#endif

#if defined(__aarch64__)
/* 4 values: float -> double, multiply, round half to even (frintn), clamp;
 * the integral doubles in [-127, 127] convert to int32 exactly. */
CC_ALWAYS_INLINE int32x4_t quantize4_neon(const float* x, float64x2_t kv) {
  const float64x2_t hi = vdupq_n_f64(127.0), lo = vdupq_n_f64(-127.0);
  const float32x4_t v = vld1q_f32(x);
  float64x2_t a = vmulq_f64(vcvt_f64_f32(vget_low_f32(v)), kv);
  float64x2_t b = vmulq_f64(vcvt_high_f64_f32(v), kv);
  a = vminq_f64(vmaxq_f64(vrndnq_f64(a), lo), hi);
  b = vminq_f64(vmaxq_f64(vrndnq_f64(b), lo), hi);
  return vcombine_s32(vmovn_s64(vcvtq_s64_f64(a)), vmovn_s64(vcvtq_s64_f64(b)));
}

/* One block: 16 values per step (narrowed to bytes, exact here), the rest
 * one by one. */
CC_ALWAYS_INLINE void quantize_block_neon(const float* x, int n, double k, int8_t* xq) {
  const float64x2_t kv = vdupq_n_f64(k);
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    const int16x8_t lo = vcombine_s16(vmovn_s32(quantize4_neon(x + r, kv)),
                                      vmovn_s32(quantize4_neon(x + r + 4, kv)));
    const int16x8_t hi = vcombine_s16(vmovn_s32(quantize4_neon(x + r + 8, kv)),
                                      vmovn_s32(quantize4_neon(x + r + 12, kv)));
    vst1q_s8(xq + r, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
  }
  quantize_values_scalar(x + r, n - r, k, xq + r);
}

void cc_quantize_neon(const float* x, size_t rows, int n_blocks, int ibs, const double* k,
                      int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_block_neon);
}
#endif
