/* int8 activation quantization (phase 1 of the layers with int8 weights):
 * the quantize_fn variants of cc_kernels_internal.h, the portable one and on
 * x86-64 AVX2 and AVX-512 ones (cc_select_quantize in cc_dispatch.c picks).
 * Every variant gives the same bytes.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include "cc_kernels_internal.h"

#include <math.h>
#include <string.h>

CC_ALWAYS_INLINE void quantize_values_scalar(const float* x, int n, double k, int8_t* xq) {
  for (int r = 0; r < n; ++r) {
    double v = nearbyint((double)x[r] * k);
    v = v > 127.0 ? 127.0 : v < -127.0 ? -127.0 : v;
    xq[r] = (int8_t)v;
  }
}

void cc_quantize_values_default(const float* x, int n, int padded, double k, int8_t* xq) {
  quantize_values_scalar(x, n, k, xq);
  memset(xq + n, 0, (size_t)(padded - n));
}

#if defined(__x86_64__) || defined(__i386__)
/* The same values 16 at a time: float -> double, multiply, round half to
 * even (the mode nearbyint uses by default, here explicit), clamp, and the
 * integral doubles in [-127, 127] converted and packed to bytes exactly. */
__attribute__((target("avx2,fma"))) void cc_quantize_values_avx2(const float* x, int n, int padded,
                                                                 double k, int8_t* xq) {
  const __m256d kv = _mm256_set1_pd(k), hi = _mm256_set1_pd(127.0), lo = _mm256_set1_pd(-127.0);
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    __m128i q[4];
    for (int h = 0; h < 4; ++h) {
      __m256d v = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + r + 4 * h)), kv);
      v = _mm256_round_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[h] = _mm256_cvtpd_epi32(_mm256_min_pd(_mm256_max_pd(v, lo), hi));
    }
    const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
    _mm_storeu_si128((__m128i*)(void*)(xq + r), bytes);
  }
  quantize_values_scalar(x + r, n - r, k, xq + r);
  memset(xq + n, 0, (size_t)(padded - n));
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) void cc_quantize_values_avx512(
    const float* x, int n, int padded, double k, int8_t* xq) {
  const __m512d kv = _mm512_set1_pd(k), hi = _mm512_set1_pd(127.0), lo = _mm512_set1_pd(-127.0);
  int r = 0;
  for (; r + 16 <= n; r += 16) {
    __m256i q[2];
    for (int h = 0; h < 2; ++h) {
      __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + r + 8 * h)), kv);
      v = _mm512_roundscale_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[h] = _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(v, lo), hi));
    }
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
    _mm_storeu_si128((__m128i*)(void*)(xq + r), _mm512_cvtepi32_epi8(both));
  }
  quantize_values_scalar(x + r, n - r, k, xq + r);
  memset(xq + n, 0, (size_t)(padded - n));
}
#endif
