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

/* Each variant quantizes runs of n values through a `run` function whose
 * factor is k[0] for every value (PER_VALUE 0: a block's) or k[r] for value
 * r (PER_VALUE 1: a row of blocks, see quantize_rows). kf: the same factors
 * as floats where every one is 0 or a normal float (the AVX-512 float path
 * is exact then), else NULL. */
CC_ALWAYS_INLINE void quantize_values_scalar(const float* x, int n, const double* k,
                                             const int PER_VALUE, int8_t* xq) {
  for (int r = 0; r < n; ++r) {
    double v = nearbyint((double)x[r] * k[PER_VALUE ? r : 0]);
    v = v > 127.0 ? 127.0 : v < -127.0 ? -127.0 : v;
    xq[r] = (int8_t)v;
  }
}

CC_ALWAYS_INLINE void quantize_run_scalar(const float* x, int n, const double* k, const float* kf,
                                          const int PER_VALUE, int8_t* xq) {
  (void)kf;
  quantize_values_scalar(x, n, k, PER_VALUE, xq);
}

/* A row of at most this many values whose blocks have no padding (ibs a
 * multiple of 4) is one run with a factor per value (quantize_rows). */
#define CC_QUANTIZE_ROW_VALUES 1024

typedef void (*quantize_run_fn)(const float* x, int n, const double* k, const float* kf,
                                const int PER_VALUE, int8_t* xq);

/* Whether factor k is a normal float, so that the AVX-512 float path gives
 * the double rule's bytes with it (quantize16_float_avx512). */
CC_ALWAYS_INLINE int normal_float_factor(double k) {
  return k >= (double)FLT_MIN && k <= (double)FLT_MAX;
}

/* The rows x blocks walk of every variant, `run` inlined into each. Where
 * the blocks have no padding and are short (ibs < 16: a conv's channel
 * blocks, where a run per block is mostly its fixed cost) or all written, a
 * row is one run of n_blocks * ibs values with the factor of each value's
 * block (kept on the stack; a k[b] == 0 block is then written too, as x * 0:
 * its values are all zero where the layers call this, and it is never
 * read). A call of one unpadded block per row is one run over all rows.
 * Otherwise one run per block and row, blocks outside, rows inside,
 * so what the run derives from k[b] is computed once per block, the padding
 * zeroed. */
CC_ALWAYS_INLINE void quantize_rows(const float* x, size_t rows, int n_blocks, int ibs,
                                    const double* k, int8_t* xq, quantize_run_fn run) {
  const int padded = (ibs + 3) / 4 * 4;
  int all_written = 1;
  for (int b = 0; b < n_blocks; ++b) all_written &= k[b] != 0.0;
  if (padded == ibs && n_blocks > 1 && (size_t)n_blocks * ibs <= CC_QUANTIZE_ROW_VALUES &&
      (ibs < 16 || all_written)) {
    const int n = n_blocks * ibs;
    double kd[CC_QUANTIZE_ROW_VALUES];
    float kf[CC_QUANTIZE_ROW_VALUES];
    int float_ok = 1;
    for (int b = 0; b < n_blocks; ++b) {
      const double kb = k[b];
      const int ok = kb == 0.0 || normal_float_factor(kb); /* x * 0 is 0 either way */
      float_ok &= ok;
      for (int v = 0; v < ibs; ++v) {
        kd[b * ibs + v] = kb;
        kf[b * ibs + v] = ok ? (float)kb : 0.0f;
      }
    }
    for (size_t r = 0; r < rows; ++r)
      run(x + r * (size_t)n, n, kd, float_ok ? kf : NULL, 1, xq + r * (size_t)n);
    return;
  }
  if (padded == ibs && n_blocks == 1) { /* the rows are one block: one run, in chunks */
    const float kf0 = (float)k[0];
    const size_t total = rows * (size_t)ibs, chunk = (size_t)1 << 24;
    for (size_t done = 0; k[0] != 0.0 && done < total; done += chunk) {
      const int n = (int)(total - done < chunk ? total - done : chunk);
      run(x + done, n, k, normal_float_factor(k[0]) ? &kf0 : NULL, 0, xq + done);
    }
    return;
  }
  for (int b = 0; b < n_blocks; ++b) {
    if (k[b] == 0.0) continue;
    /* The float path only where a run has 16 values (blocks of 8 would
     * mostly pay for setting it up). */
    const float kfb = (float)k[b];
    const float* kf = ibs >= 16 && normal_float_factor(k[b]) ? &kfb : NULL;
    for (size_t r = 0; r < rows; ++r) {
      int8_t* qb = xq + (r * (size_t)n_blocks + (size_t)b) * padded;
      run(x + (r * (size_t)n_blocks + (size_t)b) * ibs, ibs, &k[b], kf, 0, qb);
      for (int pad = ibs; pad < padded; ++pad) qb[pad] = 0;
    }
  }
}

void cc_quantize_default(const float* x, size_t rows, int n_blocks, int ibs, const double* k,
                         int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_run_scalar);
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

/* The factors of values [r, r + 4) of a run. */
CC_ALWAYS_INLINE __attribute__((target("avx2,fma"))) __m256d factors4_avx2(const double* k, int r,
                                                                           const int PER_VALUE) {
  return PER_VALUE ? _mm256_loadu_pd(k + r) : _mm256_set1_pd(k[0]);
}

/* One run: 16 values per step, then 8 (packed to bytes with saturation,
 * exact here), the rest one by one. */
CC_ALWAYS_INLINE __attribute__((target("avx2,fma"))) void quantize_run_avx2(
    const float* x, int n, const double* k, const float* kf, const int PER_VALUE, int8_t* xq) {
  (void)kf;
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    __m128i q[4];
    for (int h = 0; h < 4; ++h)
      q[h] = quantize4_avx2(x + r + 4 * h, factors4_avx2(k, r + 4 * h, PER_VALUE));
    const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
    _mm_storeu_si128((__m128i*)(void*)(xq + r), bytes);
  }
  if (r + 8 <= n) {
    const __m128i words =
        _mm_packs_epi32(quantize4_avx2(x + r, factors4_avx2(k, r, PER_VALUE)),
                        quantize4_avx2(x + r + 4, factors4_avx2(k, r + 4, PER_VALUE)));
    _mm_storel_epi64((__m128i*)(void*)(xq + r), _mm_packs_epi16(words, words));
    r += 8;
  }
  quantize_values_scalar(x + r, n - r, PER_VALUE ? k + r : k, PER_VALUE, xq + r);
}

__attribute__((target("avx2,fma"))) void cc_quantize_avx2(const float* x, size_t rows, int n_blocks,
                                                          int ibs, const double* k, int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_run_avx2);
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

/* The factors of values [r, r + 8) of a run (lanes outside `lanes` 0). */
CC_ALWAYS_INLINE __attribute__((target(CC_QUANTIZE_AVX512_TARGET))) __m512d
factors8_avx512(const double* k, int r, __mmask8 lanes, const int PER_VALUE) {
  return PER_VALUE ? _mm512_maskz_loadu_pd(lanes, k + r) : _mm512_set1_pd(k[0]);
}

/* One run: 16 values per step (in float32 where exact, see
 * quantize16_float_avx512; with kf NULL always the double path), then 8 at
 * a time in double, the last under a mask (8 doubles are one vector, as
 * many steps as 8 floats take). */
CC_ALWAYS_INLINE __attribute__((target(CC_QUANTIZE_AVX512_TARGET))) void quantize_run_avx512(
    const float* x, int n, const double* k, const float* kf, const int PER_VALUE, int8_t* xq) {
  const __m512 kf_all = _mm512_set1_ps(kf != NULL && !PER_VALUE ? kf[0] : 0.0f);
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    if (kf != NULL &&
        quantize16_float_avx512(x + r, PER_VALUE ? _mm512_loadu_ps(kf + r) : kf_all, xq + r))
      continue;
    const __m256i q0 = quantize8_avx512(x + r, 0xff, factors8_avx512(k, r, 0xff, PER_VALUE)),
                  q1 =
                      quantize8_avx512(x + r + 8, 0xff, factors8_avx512(k, r + 8, 0xff, PER_VALUE));
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    _mm_storeu_si128((__m128i*)(void*)(xq + r), _mm512_cvtepi32_epi8(both));
  }
  for (; r < n; r += 8) {
    const __mmask8 lanes = n - r >= 8 ? 0xff : (__mmask8)((1u << (n - r)) - 1u);
    _mm256_mask_cvtepi32_storeu_epi8(
        xq + r, lanes, quantize8_avx512(x + r, lanes, factors8_avx512(k, r, lanes, PER_VALUE)));
  }
}

__attribute__((target(CC_QUANTIZE_AVX512_TARGET))) void cc_quantize_avx512(
    const float* x, size_t rows, int n_blocks, int ibs, const double* k, int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_run_avx512);
}
#undef CC_QUANTIZE_AVX512_TARGET
#endif

#if defined(__aarch64__)
/* 4 values: float -> double, multiply, round half to even (frintn), clamp;
 * the integral doubles in [-127, 127] convert to int32 exactly. */
CC_ALWAYS_INLINE int32x4_t quantize4_neon(const float* x, const double* k, int r,
                                          const int PER_VALUE) {
  const float64x2_t hi = vdupq_n_f64(127.0), lo = vdupq_n_f64(-127.0);
  const float64x2_t k_lo = PER_VALUE ? vld1q_f64(k + r) : vdupq_n_f64(k[0]);
  const float64x2_t k_hi = PER_VALUE ? vld1q_f64(k + r + 2) : k_lo;
  const float32x4_t v = vld1q_f32(x + r);
  float64x2_t a = vmulq_f64(vcvt_f64_f32(vget_low_f32(v)), k_lo);
  float64x2_t b = vmulq_f64(vcvt_high_f64_f32(v), k_hi);
  a = vminq_f64(vmaxq_f64(vrndnq_f64(a), lo), hi);
  b = vminq_f64(vmaxq_f64(vrndnq_f64(b), lo), hi);
  return vcombine_s32(vmovn_s64(vcvtq_s64_f64(a)), vmovn_s64(vcvtq_s64_f64(b)));
}

/* One run: 16 values per step (narrowed to bytes, exact here), the rest
 * one by one. */
CC_ALWAYS_INLINE void quantize_run_neon(const float* x, int n, const double* k, const float* kf,
                                        const int PER_VALUE, int8_t* xq) {
  (void)kf;
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    const int16x8_t lo = vcombine_s16(vmovn_s32(quantize4_neon(x, k, r, PER_VALUE)),
                                      vmovn_s32(quantize4_neon(x, k, r + 4, PER_VALUE)));
    const int16x8_t hi = vcombine_s16(vmovn_s32(quantize4_neon(x, k, r + 8, PER_VALUE)),
                                      vmovn_s32(quantize4_neon(x, k, r + 12, PER_VALUE)));
    vst1q_s8(xq + r, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
  }
  quantize_values_scalar(x + r, n - r, PER_VALUE ? k + r : k, PER_VALUE, xq + r);
}

void cc_quantize_neon(const float* x, size_t rows, int n_blocks, int ibs, const double* k,
                      int8_t* xq) {
  quantize_rows(x, rows, n_blocks, ibs, k, xq, quantize_run_neon);
}
#endif
