/* The int8 dot kernels of x86-64 (dot_q8_fn and the group, tiles and conv
 * kernels of cc_kernels_internal.h), each compiled for its ISA with
 * __attribute__((target)); cc_select_q8 (cc_dispatch.c) picks by CPU:
 *   cc_dot_q8_avx2               AVX2 vpmaddubsw (ymm)
 *   cc_dot_q8_avx512vnni         AVX512-VNNI + VL vpdpbusd on ymm; in the
 *                                CC_Q8_VNNI_EMULATED test build, SIMDe's
 *                                vpdpbusd on AVX2
 *   cc_dot_q8_avx512vnni_zmm     AVX512-VNNI + BW on zmm, with the
 *     _group, _tiles, _conv      several-examples, batch-1 and conv kernels
 *   cc_dot_q8_avxvnni            AVX-VNNI (VEX) vpdpbusd on ymm
 * The ymm kernels are instances of one template (CC_Q8_X86_KERNEL) with the
 * ISA's multiply-add step, each with its batch-1 tiles kernel (name_tiles).
 * Every kernel gives the same int32 sums.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include "cc_kernels_internal.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
/* The 32 weight bytes at wp. */
#define CC_Q8_W(wp) _mm256_loadu_si256((const __m256i*)(const void*)(wp))

/* The weight bytes at wp with the activation's sign moved onto them
 * (vpsignb): the unsigned x signed products then see |x| <= 127. */
#define CC_Q8_SIGNED_W(wp) _mm256_sign_epi8(CC_Q8_W(wp), xs)

/* One quad (4 activation bytes at xq4, broadcast as xs, xa = |xs|) against
 * the 128 weight bytes at wp: 32 outputs into the accumulators c0..c3. */
#define CC_Q8_X86_QUAD(STEP, xq4, wp, c0, c1, c2, c3) \
  do {                                                \
    int32_t word_;                                    \
    memcpy(&word_, (xq4), sizeof(word_));             \
    const __m256i xs = _mm256_set1_epi32(word_);      \
    const __m256i xa = _mm256_abs_epi8(xs);           \
    STEP(c0, xa, CC_Q8_SIGNED_W(wp));                 \
    STEP(c1, xa, CC_Q8_SIGNED_W((wp) + 32));          \
    STEP(c2, xa, CC_Q8_SIGNED_W((wp) + 64));          \
    STEP(c3, xa, CC_Q8_SIGNED_W((wp) + 96));          \
  } while (0)

/* CC_Q8_X86_QUAD for 4 bytes that are all >= 0 (x = |x|): the weights as
 * they are, no vpabsb and no vpsignb. */
#define CC_Q8_X86_QUAD_NONNEGATIVE(STEP, xq4, wp, c0, c1, c2, c3) \
  do {                                                            \
    int32_t word_;                                                \
    memcpy(&word_, (xq4), sizeof(word_));                         \
    const __m256i xs = _mm256_set1_epi32(word_);                  \
    STEP(c0, xs, CC_Q8_W(wp));                                    \
    STEP(c1, xs, CC_Q8_W((wp) + 32));                             \
    STEP(c2, xs, CC_Q8_W((wp) + 64));                             \
    STEP(c3, xs, CC_Q8_W((wp) + 96));                             \
  } while (0)

/* One body for the x86-64 int8 kernels; STEP(acc, x, w) adds the products of
 * the 4 unsigned activation bytes x (broadcast to every int32 lane) with the
 * 32 signed weight bytes w into acc's 8 int32 lanes, one per output. */
#define CC_Q8_X86_KERNEL(name, TARGET, STEP, CHAINS)                                               \
  /* The int32 sums xq . w of one full strip (128 bytes per quad), its 32                          \
   * outputs in acc[0..3]. CHAINS 8: a short strip takes two quads per                             \
   * iteration into two sets of 4 accumulators, so that an accumulating                            \
   * vpdpbusd (latency ~5 cycles) has 8 independent chains. CHAINS 4: one set                      \
   * (vpaddd's latency is 1 cycle; with 16 ymm registers, the AVX2 step's                          \
   * temporaries and a second set spill to the stack). */                                          \
  __attribute__((target(TARGET))) CC_ALWAYS_INLINE void name##_sums(                               \
      const int8_t* w, int Q, const int8_t* xq, __m256i acc[4]) {                                  \
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;                                \
    __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                                    \
    const int8_t* wp = w;                                                                          \
    int q = 0;                                                                                     \
    const int masked = Q >= CC_Q8_MASKED_QUADS;                                                    \
    for (; CHAINS == 8 && !masked && q + 2 <= Q; q += 2, wp += 256) {                              \
      CC_Q8_X86_QUAD(STEP, xq + 4 * q, wp, a0, a1, a2, a3);                                        \
      CC_Q8_X86_QUAD(STEP, xq + 4 * q + 4, wp + 128, b0, b1, b2, b3);                              \
    }                                                                                              \
    /* A quad of 4 zero activations (zero pixels, zero relu outputs) adds                          \
     * nothing; its weights are not read. Long strips (CC_Q8_MASKED_QUADS quads or                 \
     * more, every kernel) find their non-zero quads first, up to 64 at a time (a                  \
     * bit mask, 8 quads per compare), and visit those in order, one set of                        \
     * accumulators: a branch per quad on its data was mispredicted on MNIST's                     \
     * pixels (trained condnet: 0.93-0.95x the time at batch 1, 0.88x at 32); with                 \
     * vpdpbusd (CHAINS 8) the 4 chains of the one set still beat reading every                    \
     * quad (0.80-0.83x the time of the trained int8 condnet on an Ice Lake Xeon).                 \
     * The same pass ORs the bytes' sign bits: where none of the 64 quads is                       \
     * negative (pixels, relu outputs), their products skip the sign transfer                      \
     * (CC_Q8_X86_QUAD_NONNEGATIVE: 12 vector instructions per quad instead of                     \
     * 17). Short strips (a conv's channel block per tap) keep the branch (CHAINS                  \
     * 4), which costs less there than building the mask (1.5-6% on the conv                       \
     * layers). */                                                                                 \
    for (int q0 = q; masked && q0 < Q; q0 += 64) {                                                 \
      const int n = Q - q0 < 64 ? Q - q0 : 64;                                                     \
      uint64_t nonzero = 0;                                                                        \
      uint32_t negative = 0;                                                                       \
      int k = 0;                                                                                   \
      for (; k + 8 <= n; k += 8) {                                                                 \
        const __m256i v = _mm256_loadu_si256((const __m256i*)(const void*)(xq + 4 * (q0 + k)));    \
        const __m256i zero = _mm256_cmpeq_epi32(v, _mm256_setzero_si256());                        \
        nonzero |= (uint64_t)(~_mm256_movemask_ps(_mm256_castsi256_ps(zero)) & 0xff) << k;         \
        negative |= (uint32_t)_mm256_movemask_epi8(v);                                             \
      }                                                                                            \
      for (; k < n; ++k) {                                                                         \
        uint32_t word;                                                                             \
        memcpy(&word, xq + 4 * (q0 + k), sizeof(word));                                            \
        nonzero |= (uint64_t)(word != 0) << k;                                                     \
        negative |= word & 0x80808080u;                                                            \
      }                                                                                            \
      if (negative) {                                                                              \
        for (; nonzero != 0; nonzero &= nonzero - 1) {                                             \
          const int at = q0 + __builtin_ctzll(nonzero);                                            \
          CC_Q8_X86_QUAD(STEP, xq + 4 * at, w + (size_t)at * 128, a0, a1, a2, a3);                 \
        }                                                                                          \
      } else {                                                                                     \
        for (; nonzero != 0; nonzero &= nonzero - 1) {                                             \
          const int at = q0 + __builtin_ctzll(nonzero);                                            \
          CC_Q8_X86_QUAD_NONNEGATIVE(STEP, xq + 4 * at, w + (size_t)at * 128, a0, a1, a2, a3);     \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    for (; !masked && q < Q; ++q, wp += 128) {                                                     \
      int32_t word;                                                                                \
      memcpy(&word, xq + 4 * q, sizeof(word));                                                     \
      if (CHAINS == 4 && word == 0) continue;                                                      \
      CC_Q8_X86_QUAD(STEP, xq + 4 * q, wp, a0, a1, a2, a3);                                        \
    }                                                                                              \
    /* exact: each int32 lane's total is the same sum, split in two */                             \
    acc[0] = _mm256_add_epi32(a0, b0);                                                             \
    acc[1] = _mm256_add_epi32(a1, b1);                                                             \
    acc[2] = _mm256_add_epi32(a2, b2);                                                             \
    acc[3] = _mm256_add_epi32(a3, b3);                                                             \
  }                                                                                                \
  __attribute__((target(TARGET))) CC_ALWAYS_INLINE void name##_one(                                \
      const int8_t* w, int Q, int cols, const int8_t* xq, float s, float* y) {                     \
    const __m256 sv = _mm256_set1_ps(s);                                                           \
    const size_t ld = (size_t)cols * 4;                                                            \
    if (cols == CC_Q8_STRIP) { /* the common case */                                               \
      __m256i acc[4];                                                                              \
      name##_sums(w, Q, xq, acc);                                                                  \
      for (int t = 0; t < 4; ++t) {                                                                \
        float* yt = y + 8 * t;                                                                     \
        _mm256_storeu_ps(yt,                                                                       \
                         _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t]), sv, _mm256_loadu_ps(yt)));    \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    int c = 0;                                                                                     \
    /* Narrower strips (a block size that is not a multiple of 32, e.g. 16):                       \
     * 16 outputs per pass (8 in the last one if that is what is left), one                        \
     * activation broadcast for both halves. */                                                    \
    while (c + 8 <= cols) {                                                                        \
      const int two = c + 16 <= cols;                                                              \
      __m256i a0 = _mm256_setzero_si256(), a1 = a0;                                                \
      const int8_t* wp = w + (size_t)c * 4;                                                        \
      for (int q = 0; q < Q; ++q, wp += ld) {                                                      \
        int32_t word;                                                                              \
        memcpy(&word, xq + 4 * q, sizeof(word));                                                   \
        const __m256i xs = _mm256_set1_epi32(word);                                                \
        const __m256i xa = _mm256_abs_epi8(xs);                                                    \
        STEP(a0, xa, CC_Q8_SIGNED_W(wp));                                                          \
        if (two) STEP(a1, xa, CC_Q8_SIGNED_W(wp + 32));                                            \
      }                                                                                            \
      _mm256_storeu_ps(y + c,                                                                      \
                       _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), sv, _mm256_loadu_ps(y + c)));       \
      if (two)                                                                                     \
        _mm256_storeu_ps(y + c + 8,                                                                \
                         _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1), sv, _mm256_loadu_ps(y + c + 8))); \
      c += two ? 16 : 8;                                                                           \
    }                                                                                              \
    if (c < cols) cc_dot_q8_columns(w + (size_t)c * 4, ld, Q, cols - c, xq, s, y + c);             \
  }                                                                                                \
  /* One example against n full strips (dot_q8_tiles_fn): the same float                           \
   * steps as n calls of name##_one, with y in registers between them. */                          \
  __attribute__((target(TARGET))) void name##_tiles(const int8_t* const* tiles, size_t offset,     \
                                                    int Q, int n, const int8_t* const* xq,         \
                                                    const float* s, float* y) {                    \
    __m256 yv[4];                                                                                  \
    for (int t = 0; t < 4; ++t) yv[t] = _mm256_loadu_ps(y + 8 * t);                                \
    for (int i = 0; i < n; ++i) {                                                                  \
      __m256i acc[4];                                                                              \
      name##_sums(tiles[i] + offset, Q, xq[i], acc);                                               \
      const __m256 sv = _mm256_set1_ps(s[i]);                                                      \
      for (int t = 0; t < 4; ++t) yv[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t]), sv, yv[t]);  \
    }                                                                                              \
    for (int t = 0; t < 4; ++t) _mm256_storeu_ps(y + 8 * t, yv[t]);                                \
  }                                                                                                \
  __attribute__((target(TARGET))) CC_Q8_PIXELS(name, name##_one)

/* AVX2: vpmaddubsw (unsigned x signed bytes): a pair sum is at most
 * 2 * 127 * 127 < 2^15, no saturation. Then vpmaddwd with ones sums the
 * pairs: 32 multiply-adds per 4 instructions (XNNPACK's AVX2 int8 kernels
 * widen to 16 bits: 16 per 3). */
#define CC_Q8_AVX2_STEP(acc, x, w) \
  acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), _mm256_set1_epi16(1)))
CC_Q8_X86_KERNEL(cc_dot_q8_avx2, "avx2,fma", CC_Q8_AVX2_STEP, 4)
#undef CC_Q8_AVX2_STEP

/* VNNI: vpdpbusd does the 4 products and the int32 sum in one instruction
 * (no intermediate saturation), on ymm registers: AVX512-VNNI + AVX512VL
 * (EVEX; Ice Lake / Sapphire Rapids Xeons, Zen 4) or AVX-VNNI (VEX; Alder
 * Lake and later cores without AVX-512), the same code. Built by GCC only
 * (Clang builds keep the AVX2 kernel). CC_Q8_VNNI_EMULATED (a test build,
 * tests/test_native_fuzz.py) runs this code on AVX2 with SIMDe's vpdpbusd,
 * so the kernel logic is fuzzed against the reference on any x86-64 CPU;
 * tflite/check_cpu_kernels.sh runs the instruction itself where the CPU has it. */
#if defined(CC_HAVE_VNNI_CLONE)
#if defined(CC_Q8_VNNI_EMULATED)
#include <simde/x86/avx512/dpbusd.h>
__attribute__((target("avx2,fma"))) CC_ALWAYS_INLINE __m256i cc_dpbusd_emulated(__m256i acc,
                                                                                __m256i a,
                                                                                __m256i b) {
  simde__m256i sa, sb, sc;
  memcpy(&sc, &acc, sizeof(acc));
  memcpy(&sa, &a, sizeof(a));
  memcpy(&sb, &b, sizeof(b));
  sc = simde_mm256_dpbusd_epi32(sc, sa, sb);
  memcpy(&acc, &sc, sizeof(acc));
  return acc;
}
#define CC_Q8_DPBUSD_EVEX cc_dpbusd_emulated
#define CC_Q8_TARGET_EVEX "avx2,fma"
#else
#define CC_Q8_DPBUSD_EVEX _mm256_dpbusd_epi32
#define CC_Q8_TARGET_EVEX "avx512vnni,avx512vl,avx512f,avx2,fma"
#endif
#define CC_Q8_VNNI_EVEX_STEP(acc, x, w) acc = CC_Q8_DPBUSD_EVEX(acc, x, w)
CC_Q8_X86_KERNEL(cc_dot_q8_avx512vnni, CC_Q8_TARGET_EVEX, CC_Q8_VNNI_EVEX_STEP, 8)
#undef CC_Q8_VNNI_EVEX_STEP
#undef CC_Q8_DPBUSD_EVEX
#undef CC_Q8_TARGET_EVEX
#if defined(CC_HAVE_VNNI_ZMM_CLONE) /* the emulated build runs the EVEX kernel only */
/* AVX512-VNNI + AVX512BW on zmm registers, full strips only (32 outputs =
 * 128 bytes per quad = 2 zmm): twice the bytes per instruction of the ymm
 * kernel. AVX-512 has no vpsignb, so the activation's sign moves onto the
 * weights with a masked subtraction (the sign bits of the broadcast
 * activation as the byte mask; where x = 0, |x| = 0 zeroes the product
 * anyway). Four quads per iteration into four pairs of accumulators:
 * 8 independent vpdpbusd chains. Same int32 sums as every kernel. Other
 * strip widths take the ymm kernel. */
#define CC_Q8_ZMM_TARGET "avx512vnni,avx512bw,avx512vl,avx512f,avx2,fma"
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_zmm_quad(const int8_t* wp,
                                                                                const int8_t* xq,
                                                                                __m512i* lo,
                                                                                __m512i* hi) {
  int32_t word;
  memcpy(&word, xq, sizeof(word));
  const __m512i xs = _mm512_set1_epi32(word);
  const __m512i xa = _mm512_abs_epi8(xs);
  const __mmask64 negative = _mm512_movepi8_mask(xs);
  const __m512i zero = _mm512_setzero_si512();
  __m512i w0 = _mm512_loadu_si512((const void*)wp);
  __m512i w1 = _mm512_loadu_si512((const void*)(wp + 64));
  w0 = _mm512_mask_sub_epi8(w0, negative, zero, w0);
  w1 = _mm512_mask_sub_epi8(w1, negative, zero, w1);
  *lo = _mm512_dpbusd_epi32(*lo, xa, w0);
  *hi = _mm512_dpbusd_epi32(*hi, xa, w1);
}

/* dot_q8_zmm_quad for 4 bytes that are all >= 0: vpdpbusd takes them as
 * they are (no vpabsb, no masked subtractions). */
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_zmm_quad_nonnegative(
    const int8_t* wp, const int8_t* xq, __m512i* lo, __m512i* hi) {
  int32_t word;
  memcpy(&word, xq, sizeof(word));
  const __m512i xs = _mm512_set1_epi32(word);
  *lo = _mm512_dpbusd_epi32(*lo, xs, _mm512_loadu_si512((const void*)wp));
  *hi = _mm512_dpbusd_epi32(*hi, xs, _mm512_loadu_si512((const void*)(wp + 64)));
}

/* One quad through dot_q8_zmm_quad_nonnegative or dot_q8_zmm_quad
 * (NONNEGATIVE is a constant at every call). */
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_zmm_quad_as(
    const int NONNEGATIVE, const int8_t* wp, const int8_t* xq, __m512i* lo, __m512i* hi) {
  if (NONNEGATIVE)
    dot_q8_zmm_quad_nonnegative(wp, xq, lo, hi);
  else
    dot_q8_zmm_quad(wp, xq, lo, hi);
}

/* The quads at[0..count-1] of a strip, 4 per iteration into the 4 pairs of
 * accumulators (8 vpdpbusd chains). NONNEGATIVE is a constant: the caller's
 * two calls are two loops. */
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_zmm_visit(
    const int8_t* w, const int8_t* xq, const int32_t* at, int count, const int NONNEGATIVE,
    __m512i lo[4], __m512i hi[4]) {
  int i = 0;
  for (; i + 4 <= count; i += 4)
    for (int u = 0; u < 4; ++u)
      dot_q8_zmm_quad_as(NONNEGATIVE, w + (size_t)at[i + u] * 128, xq + 4 * at[i + u], &lo[u],
                         &hi[u]);
  for (int u = 0; i < count; ++i, ++u)
    dot_q8_zmm_quad_as(NONNEGATIVE, w + (size_t)at[i] * 128, xq + 4 * at[i], &lo[u], &hi[u]);
}

/* The int32 sums xq . w of one full strip, its 32 outputs in two zmm.
 * As in the AVX2 kernel, a strip of CC_Q8_MASKED_QUADS quads or more reads
 * the weights of its non-zero quads only (zero pixels and relu outputs add
 * nothing): 16 quads per compare, their indices packed by vpcompressd (in a
 * register, then stored: a compressing store is slow on AMD Zen 4), up to
 * 64 at a time; where none of them has a negative byte, their products
 * skip the sign transfer. Shorter strips take every quad. */
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_zmm_sums(
    const int8_t* w, int Q, const int8_t* xq, __m512i* sum_lo, __m512i* sum_hi) {
  __m512i lo[4], hi[4];
  for (int u = 0; u < 4; ++u) lo[u] = hi[u] = _mm512_setzero_si512();
  if (Q >= CC_Q8_MASKED_QUADS) {
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int q0 = 0; q0 < Q; q0 += 64) {
      const int n = Q - q0 < 64 ? Q - q0 : 64;
      int32_t at[64 + 16]; /* each packed store writes 16 lanes */
      int count = 0;
      __mmask64 negative = 0;
      for (int k = 0; k < n; k += 16) {
        const __mmask16 in = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
        const __m512i v = _mm512_maskz_loadu_epi32(in, (const void*)(xq + 4 * (q0 + k)));
        const __mmask16 nonzero = _mm512_test_epi32_mask(v, v);
        negative |= _mm512_movepi8_mask(v);
        const __m512i quads = _mm512_add_epi32(iota, _mm512_set1_epi32(q0 + k));
        _mm512_storeu_si512((void*)(at + count), _mm512_maskz_compress_epi32(nonzero, quads));
        count += __builtin_popcount((unsigned)nonzero);
      }
      if (negative)
        dot_q8_zmm_visit(w, xq, at, count, 0, lo, hi);
      else
        dot_q8_zmm_visit(w, xq, at, count, 1, lo, hi);
    }
  } else {
    int q = 0;
    for (; q + 4 <= Q; q += 4)
      for (int u = 0; u < 4; ++u)
        dot_q8_zmm_quad(w + (size_t)(q + u) * 128, xq + 4 * (q + u), &lo[u], &hi[u]);
    for (; q < Q; ++q) dot_q8_zmm_quad(w + (size_t)q * 128, xq + 4 * q, &lo[0], &hi[0]);
  }
  /* exact: each int32 lane's total is the same sum, split in four */
  *sum_lo = _mm512_add_epi32(_mm512_add_epi32(lo[0], lo[1]), _mm512_add_epi32(lo[2], lo[3]));
  *sum_hi = _mm512_add_epi32(_mm512_add_epi32(hi[0], hi[1]), _mm512_add_epi32(hi[2], hi[3]));
}

__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_avx512vnni_zmm_one(
    const int8_t* w, int Q, int cols, const int8_t* xq, float s, float* y) {
  if (cols != CC_Q8_STRIP) {
    cc_dot_q8_avx512vnni_one(w, Q, cols, xq, s, y);
    return;
  }
  __m512i sum_lo, sum_hi;
  dot_q8_zmm_sums(w, Q, xq, &sum_lo, &sum_hi);
  const __m512 sv = _mm512_set1_ps(s);
  _mm512_storeu_ps(y, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_lo), sv, _mm512_loadu_ps(y)));
  _mm512_storeu_ps(y + 16,
                   _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_hi), sv, _mm512_loadu_ps(y + 16)));
}

/* One example against n tiles: y[0:32] += s[t] * (xq[t] . strip t) for
 * t = 0..n-1 in turn, strip t at tiles[t] + offset. The same float steps as
 * n calls of dot_q8_avx512vnni_zmm_one, with y kept in registers between
 * them: batch 1 over many small input blocks pays the per-call costs once.
 * No software prefetch of the next strip: measured slower on AMD Zen 4 than
 * leaving it to the hardware prefetchers. */
__attribute__((target(CC_Q8_ZMM_TARGET))) void cc_dot_q8_avx512vnni_zmm_tiles(
    const int8_t* const* tiles, size_t offset, int Q, int n, const int8_t* const* xq,
    const float* s, float* y) {
  __m512 y_lo = _mm512_loadu_ps(y), y_hi = _mm512_loadu_ps(y + 16);
  for (int t = 0; t < n; ++t) {
    __m512i sum_lo, sum_hi;
    dot_q8_zmm_sums(tiles[t] + offset, Q, xq[t], &sum_lo, &sum_hi);
    const __m512 sv = _mm512_set1_ps(s[t]);
    y_lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_lo), sv, y_lo);
    y_hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_hi), sv, y_hi);
  }
  _mm512_storeu_ps(y, y_lo);
  _mm512_storeu_ps(y + 16, y_hi);
}
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_Q8_PIXELS(cc_dot_q8_avx512vnni_zmm,
                                                       dot_q8_avx512vnni_zmm_one)

/* The 4 activation bytes at x made unsigned for vpdpbusd (unsigned x signed
 * bytes), broadcast to every int32 lane: xq + 128 = xq ^ 0x80, in [1, 255].
 * The broadcast reads memory (no trip through a general-purpose register)
 * as the xor's embedded broadcast, one vpxord m32{1to16} / m32{1to8}: an
 * xor of 32-bit lanes (_mm256_xor_epi32; GCC does not fold the broadcast
 * into _mm256_xor_si256, whose lanes are 64-bit). The kernels below
 * subtract the offset's share, 128 * sum w, precomputed by cc_q8_pack (the
 * offset sums). */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) __m512i
q8_unsigned_quad_zmm(const int8_t* x) {
  return _mm512_xor_si512(_mm512_broadcastd_epi32(_mm_loadu_si32((const void*)x)),
                          _mm512_set1_epi8((char)0x80));
}
/* The conv kernels' activations already carry the offset (xq ^ 0x80,
 * cc_conv_q8_offset_activations): the 4 bytes of quad q (or quads q and
 * q + 1 where `pair`) broadcast, loads alone (vpbroadcastd / vpbroadcastq
 * from memory take no ALU port, which the zmm vpdpbusd shares with the
 * xor of q8_unsigned_quad_zmm). */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) __m512i
q8_offset_quads_zmm(const int8_t* x, int pair) {
  return pair ? _mm512_broadcastq_epi64(_mm_loadl_epi64((const __m128i*)(const void*)x))
              : _mm512_broadcastd_epi32(_mm_loadu_si32((const void*)x));
}
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) __m512i
q8_offset_quad_zmm(const int8_t* x) {
  return q8_offset_quads_zmm(x, 0);
}

/* 2 <= n <= CC_Q8_GROUP examples against one full strip (32 outputs), each
 * weight vector loaded once for all of them. With several examples the
 * activation's sign cannot move onto the shared weights, so the activations
 * are made unsigned instead (q8_unsigned_quad_zmm): sum (xq + 128) * w =
 * sum xq * w + 128 * sum w, the last term the strip's offset sums,
 * subtracted at the end. The int32 lanes wrap, but the difference is the exact
 * sum xq . w, which fits (|xq|, |w| <= 127, Q within CC_Q8_MAX_QUADS). */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_zmm_group_quad(
    const int8_t* w, int q, const int n, const int8_t* const* xq, __m512i* lo, __m512i* hi) {
  const int8_t* wp = w + (size_t)q * 128;
  const __m512i w0 = _mm512_loadu_si512((const void*)wp);
  const __m512i w1 = _mm512_loadu_si512((const void*)(wp + 64));
  for (int g = 0; g < n; ++g) {
    const __m512i xu = q8_unsigned_quad_zmm(xq[g] + 4 * q);
    lo[g] = _mm512_dpbusd_epi32(lo[g], xu, w0);
    hi[g] = _mm512_dpbusd_epi32(hi[g], xu, w1);
  }
}

/* U sets of accumulators over interleaved quads keep at least 8 vpdpbusd
 * chains in flight for small n; constant n and U keep them in registers. */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_zmm_group_n(
    const int8_t* w, const int32_t* sums, int Q, const int n, const int U, const int8_t* const* xq,
    const float* s, float* const* y) {
  __m512i lo[2][CC_Q8_GROUP], hi[2][CC_Q8_GROUP];
  for (int u = 0; u < U; ++u)
    for (int g = 0; g < n; ++g) lo[u][g] = hi[u][g] = _mm512_setzero_si512();
  int q = 0;
  for (; q + U <= Q; q += U)
    for (int u = 0; u < U; ++u) dot_q8_zmm_group_quad(w, q + u, n, xq, lo[u], hi[u]);
  for (; q < Q; ++q) dot_q8_zmm_group_quad(w, q, n, xq, lo[0], hi[0]);
  const __m512i c_lo = _mm512_loadu_si512((const void*)sums);
  const __m512i c_hi = _mm512_loadu_si512((const void*)(sums + 16));
  for (int g = 0; g < n; ++g) {
    __m512i sum_lo = lo[0][g], sum_hi = hi[0][g];
    for (int u = 1; u < U; ++u) {
      sum_lo = _mm512_add_epi32(sum_lo, lo[u][g]);
      sum_hi = _mm512_add_epi32(sum_hi, hi[u][g]);
    }
    sum_lo = _mm512_sub_epi32(sum_lo, c_lo);
    sum_hi = _mm512_sub_epi32(sum_hi, c_hi);
    const __m512 sv = _mm512_set1_ps(s[g]);
    float* yg = y[g];
    _mm512_storeu_ps(yg, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_lo), sv, _mm512_loadu_ps(yg)));
    _mm512_storeu_ps(yg + 16,
                     _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_hi), sv, _mm512_loadu_ps(yg + 16)));
  }
}

__attribute__((target(CC_Q8_ZMM_TARGET))) void cc_dot_q8_avx512vnni_zmm_group(
    const int8_t* w, const int32_t* sums, int Q, int n, const int8_t* const* xq, const float* s,
    float* const* y) {
  switch (n) { /* 2..CC_Q8_GROUP (dot_q8_examples sends a single example to dot_q8_fn) */
    case 2:
      dot_q8_zmm_group_n(w, sums, Q, 2, 2, xq, s, y);
      break;
    case 3:
      dot_q8_zmm_group_n(w, sums, Q, 3, 1, xq, s, y);
      break;
    default:
      dot_q8_zmm_group_n(w, sums, Q, 4, 1, xq, s, y);
      break;
  }
}
/* MR output pixels x W zmm of outputs (a strip of 16 W columns, quads of
 * 64 W bytes) over the taps_h x taps_w taps of `taps`: the pixels share each
 * weight load through the unsigned-offset activations of the group kernel
 * above, the offset sums of the taps summed (corr) for all of them. MR * W
 * accumulators. ROW3 (constant; cc_dot_q8_avx512vnni_zmm_conv sets it where
 * taps_w == 3 and x_step_w == x_step: a row of pixels with dilation_w ==
 * stride_w, e.g. the interior of a 3x3 conv with stride 1): pixel m's tap
 * column c reads the activations pixel m + c reads for tap column 0, so each
 * tap row broadcasts the quads of MR + 2 input pixels, each for up to 3
 * (pixel, tap) pairs, instead of one broadcast per pair (3 MR). The same
 * int32 sums, added in another order. */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_zmm_conv_tile(
    const int8_t* w, const int32_t* sums, const cc_q8_conv_taps* taps, int Q, const int8_t* xq,
    size_t x_step, const int MR, const int W, const int ROW3, float s, float* y, size_t y_step,
    int store) {
  const cc_q8_conv_taps k = *taps;
  const int taps_w = ROW3 ? 3 : k.taps_w;
  __m512i acc[CC_Q8_CONV_PIXELS][2], corr[2];
  for (int v = 0; v < W; ++v) {
    corr[v] = _mm512_setzero_si512();
    for (int m = 0; m < MR; ++m) acc[m][v] = _mm512_setzero_si512();
  }
  for (int a = 0; a < k.taps_h; ++a) {
    const int8_t* wa = w + a * k.w_step_h;
    const int8_t* xa = xq + a * k.x_step_h;
    for (int b = 0; b < taps_w; ++b) {
      const int32_t* st = sums + a * k.sums_step_h + b * k.sums_step_w;
      for (int v = 0; v < W; ++v)
        corr[v] = _mm512_add_epi32(corr[v], _mm512_loadu_si512((const void*)(st + 16 * v)));
    }
    if (ROW3) {
      for (int q = 0; q < Q; ++q) {
        __m512i wv[3][2];
        for (int c = 0; c < 3; ++c)
          for (int v = 0; v < W; ++v)
            wv[c][v] =
                _mm512_loadu_si512((const void*)(wa + c * k.w_step_w + ((size_t)q * W + v) * 64));
        for (int p = 0; p < MR + 2; ++p) { /* pixel p - c's activations for tap column c */
          const __m512i xu = q8_offset_quad_zmm(xa + (size_t)p * x_step + 4 * q);
          for (int c = 0; c < 3; ++c)
            if (p - c >= 0 && p - c < MR)
              for (int v = 0; v < W; ++v)
                acc[p - c][v] = _mm512_dpbusd_epi32(acc[p - c][v], xu, wv[c][v]);
        }
      }
      continue;
    }
    for (int b = 0; b < taps_w; ++b) {
      const int8_t* wt = wa + b * k.w_step_w;
      const int8_t* xt = xa + b * k.x_step_w;
      for (int q = 0; q < Q; ++q) {
        __m512i wv[2];
        for (int v = 0; v < W; ++v)
          wv[v] = _mm512_loadu_si512((const void*)(wt + ((size_t)q * W + v) * 64));
        for (int m = 0; m < MR; ++m) {
          const __m512i xu = q8_offset_quad_zmm(xt + (size_t)m * x_step + 4 * q);
          for (int v = 0; v < W; ++v) acc[m][v] = _mm512_dpbusd_epi32(acc[m][v], xu, wv[v]);
        }
      }
    }
  }
  const __m512 sv = _mm512_set1_ps(s);
  for (int m = 0; m < MR; ++m) {
    float* ym = y + (size_t)m * y_step;
    for (int v = 0; v < W; ++v) {
      const __m512i sum = _mm512_sub_epi32(acc[m][v], corr[v]);
      const __m512 before = store ? _mm512_setzero_ps() : _mm512_loadu_ps(ym + 16 * v);
      _mm512_storeu_ps(ym + 16 * v, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), sv, before));
    }
  }
}

/* Quad q's strip of 8 outputs (32 bytes: outputs 0..7) and, where `pair`,
 * quad q + 1's (the next 32), output f's weights of quad q + j in int32
 * lane 2f + j (zeros in the odd lanes without a pair). */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) __m512i
q8_strip8_quads_zmm(const int8_t* w, int pair) {
  const __m512i interleave = _mm512_set_epi32(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i quads =
      pair ? _mm512_loadu_si512((const void*)w)
           : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i*)(const void*)w));
  return _mm512_permutexvar_epi32(interleave, quads);
}
/* The same for a strip of 8 outputs (quads of 32 bytes), two quads per
 * vpdpbusd: a zmm per pixel whose lane 2f + j sums output f over quads
 * q + j of each pair (q, q + 1), so that every instruction does 64
 * multiply-adds as in the strips of 16 and 32 (a ymm does 32, and on a CPU
 * with two 512-bit FMA ports the zmm form does not take twice as long).
 * Both quads' activations come in one 64-bit broadcast (lanes d0 d1 d0 d1
 * ..., q8_offset_quads_zmm); the pair's 64 weight bytes (output 0..7
 * of quad q, then of quad q + 1) are interleaved to match by one vpermd per
 * load, shared by the tile's pixels. An odd Q's last quad goes alone, its
 * weights in the even lanes and zeros in the odd ones. Each pixel's 8 sums
 * are the adjacent lane pairs added (vpshufd, vpaddd, vpmovqd). */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_strip8_conv_tile(
    const int8_t* w, const int32_t* sums, const cc_q8_conv_taps* taps, int Q, const int8_t* xq,
    size_t x_step, const int MR, const int ROW3, float s, float* y, size_t y_step, int store) {
  const cc_q8_conv_taps k = *taps;
  const int taps_w = ROW3 ? 3 : k.taps_w;
  __m512i acc[CC_Q8_CONV_PIXELS];
  __m256i corr = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) acc[m] = _mm512_setzero_si512();
  for (int a = 0; a < k.taps_h; ++a) {
    const int8_t* wa = w + a * k.w_step_h;
    const int8_t* xa = xq + a * k.x_step_h;
    for (int b = 0; b < taps_w; ++b) {
      const int32_t* st = sums + a * k.sums_step_h + b * k.sums_step_w;
      corr = _mm256_add_epi32(corr, _mm256_loadu_si256((const __m256i*)(const void*)st));
    }
/* Quads q and q + 1 (PAIR 1) or q alone (PAIR 0) of every tap column of
 * tap row a. ROW3: pixel p's activations serve pixel p - c's tap column c. */
#define CC_Q8_STRIP8_ROW3_QUADS(PAIR)                                                   \
  do {                                                                                  \
    __m512i wv[3];                                                                      \
    for (int c = 0; c < 3; ++c)                                                         \
      wv[c] = q8_strip8_quads_zmm(wa + c * k.w_step_w + (size_t)q * 32, PAIR);          \
    _Pragma("GCC unroll 10") for (int p = 0; p < MR + 2; ++p) {                         \
      const __m512i xu = q8_offset_quads_zmm(xa + (size_t)p * x_step + 4 * q, PAIR);    \
      _Pragma("GCC unroll 3") for (int c = 0; c < 3; ++c) if (p - c >= 0 && p - c < MR) \
          acc[p - c] = _mm512_dpbusd_epi32(acc[p - c], xu, wv[c]);                      \
    }                                                                                   \
  } while (0)
#define CC_Q8_STRIP8_QUADS(PAIR)                                                       \
  do {                                                                                 \
    const __m512i wv = q8_strip8_quads_zmm(wt + (size_t)q * 32, PAIR);                 \
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; ++m) acc[m] = _mm512_dpbusd_epi32( \
        acc[m], q8_offset_quads_zmm(xt + (size_t)m * x_step + 4 * q, PAIR), wv);       \
  } while (0)
    if (ROW3) {
      int q = 0;
      for (; q + 1 < Q; q += 2) CC_Q8_STRIP8_ROW3_QUADS(1);
      if (q < Q) CC_Q8_STRIP8_ROW3_QUADS(0);
      continue;
    }
    for (int b = 0; b < taps_w; ++b) {
      const int8_t* wt = wa + b * k.w_step_w;
      const int8_t* xt = xa + b * k.x_step_w;
      int q = 0;
      for (; q + 1 < Q; q += 2) CC_Q8_STRIP8_QUADS(1);
      if (q < Q) CC_Q8_STRIP8_QUADS(0);
    }
#undef CC_Q8_STRIP8_ROW3_QUADS
#undef CC_Q8_STRIP8_QUADS
  }
  const __m256 sv = _mm256_set1_ps(s);
  /* Unrolled so that acc stays in registers (GCC otherwise keeps this loop
   * and moves the accumulators through memory). */
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    float* ym = y + (size_t)m * y_step;
    const __m512i pairs = _mm512_add_epi32(acc[m], _mm512_shuffle_epi32(acc[m], _MM_PERM_CDAB));
    const __m256i sum = _mm256_sub_epi32(_mm512_cvtepi64_epi32(pairs), corr);
    const __m256 before = store ? _mm256_setzero_ps() : _mm256_loadu_ps(ym);
    _mm256_storeu_ps(ym, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), sv, before));
  }
}

__attribute__((target(CC_Q8_ZMM_TARGET))) void cc_dot_q8_avx512vnni_zmm_conv(
    const int8_t* w, const int32_t* sums, const cc_q8_conv_taps* taps, int Q, int cols,
    const int8_t* xq, size_t x_step, int n, float s, float* y, size_t y_step, int store) {
  const int row3 = taps->taps_w == 3 && taps->x_step_w == x_step;
#define CC_Q8_CONV_CASE(MR, W)                                                           \
  case MR:                                                                               \
    if (row3)                                                                            \
      dot_q8_zmm_conv_tile(w, sums, taps, Q, xq, x_step, MR, W, 1, s, y, y_step, store); \
    else                                                                                 \
      dot_q8_zmm_conv_tile(w, sums, taps, Q, xq, x_step, MR, W, 0, s, y, y_step, store); \
    return;
  if (cols == 32) {
    switch (n) {
      // clang-format off
      CC_Q8_CONV_CASE(1, 2)
      CC_Q8_CONV_CASE(2, 2)
      CC_Q8_CONV_CASE(3, 2)
      CC_Q8_CONV_CASE(4, 2)
      CC_Q8_CONV_CASE(5, 2)
      CC_Q8_CONV_CASE(6, 2)
      CC_Q8_CONV_CASE(7, 2)
      CC_Q8_CONV_CASE(8, 2)
      // clang-format on
    }
    return;
  }
#define CC_Q8_CONV_CASE8(MR)                                                             \
  case MR:                                                                               \
    if (row3)                                                                            \
      dot_q8_strip8_conv_tile(w, sums, taps, Q, xq, x_step, MR, 1, s, y, y_step, store); \
    else                                                                                 \
      dot_q8_strip8_conv_tile(w, sums, taps, Q, xq, x_step, MR, 0, s, y, y_step, store); \
    return;
  if (cols == 8) {
    switch (n) {
      // clang-format off
      CC_Q8_CONV_CASE8(1)
      CC_Q8_CONV_CASE8(2)
      CC_Q8_CONV_CASE8(3)
      CC_Q8_CONV_CASE8(4)
      CC_Q8_CONV_CASE8(5)
      CC_Q8_CONV_CASE8(6)
      CC_Q8_CONV_CASE8(7)
      CC_Q8_CONV_CASE8(8)
      // clang-format on
    }
    return;
  }
#undef CC_Q8_CONV_CASE8
  switch (n) {
    // clang-format off
    CC_Q8_CONV_CASE(1, 1)
    CC_Q8_CONV_CASE(2, 1)
    CC_Q8_CONV_CASE(3, 1)
    CC_Q8_CONV_CASE(4, 1)
    CC_Q8_CONV_CASE(5, 1)
    CC_Q8_CONV_CASE(6, 1)
    CC_Q8_CONV_CASE(7, 1)
    CC_Q8_CONV_CASE(8, 1)
    // clang-format on
  }
#undef CC_Q8_CONV_CASE
}
#undef CC_Q8_ZMM_TARGET
#define CC_Q8_VNNI_VEX_STEP(acc, x, w) acc = _mm256_dpbusd_avx_epi32(acc, x, w)
CC_Q8_X86_KERNEL(cc_dot_q8_avxvnni, "avxvnni,avx2,fma", CC_Q8_VNNI_VEX_STEP, 8)
#undef CC_Q8_VNNI_VEX_STEP
#endif
#endif
#undef CC_Q8_W
#undef CC_Q8_SIGNED_W
#undef CC_Q8_X86_QUAD
#undef CC_Q8_X86_QUAD_NONNEGATIVE
#undef CC_Q8_X86_KERNEL
#endif
