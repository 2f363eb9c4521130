/* Portable CondComp kernels, see condcomp_kernels.h.
 *
 * Work of one output block j: for each non-zero input block i that some
 * example with block j on needs, the [in_block_size][bs] weight tile of (j, i)
 * is contiguous (block-major layout) and is read once, in memory order:
 *  - batch 1 / one example (accumulate_one): a register tile of up to 16
 *    vectors (128 floats on x86-64, 64 on aarch64) accumulates the whole tile row by row, so the
 *    tile streams sequentially and only the weights touch memory. Runs of
 *    consecutive non-zero input blocks are one call (their rows are
 *    contiguous), and narrow blocks (bs < 64) split the rows over R
 *    independent accumulator sets so the FMA chains are not latency bound
 *    (bs 32 went from ~3 to ~9-14 GMAC/s on Zen 3);
 *  - several examples (accumulate_group): register tiles
 *    of 4 examples x 2 vectors of columns over all rows of the tile, so 4
 *    examples share each weight load and the accumulators stay in
 *    registers.
 * A conv's output block is a GEMM over the example's non-zero channel blocks
 * with the im2col implicit (condcomp_conv_tile.inc): register tiles of up to
 * 8 output pixels x 1-2 vectors of the block's filters accumulate every tap
 * and channel, so each weight vector loaded serves 8 pixels.
 * Batch-1 inference is memory-bound (about 1 flop per weight byte), so the
 * point is to read only the active tiles, each sequentially.
 * int8 weights (dense_block_q8) take the same order, through an integer
 * dot-product kernel per CPU; with AVX512-VNNI, up to 4 examples share each
 * weight load of a tile (dot_q8_avx512vnni_zmm_group), and one example runs
 * all its input blocks' tiles in one call with the outputs in registers
 * (dot_q8_avx512vnni_zmm_tiles).
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#elif defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include "condcomp_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CC_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#error "condcomp_kernels.c needs GCC or Clang (vector extensions)"
#endif

#if (defined(__x86_64__) || defined(__i386__)) && !defined(CONDCOMP_NO_MULTIVERSION) && \
    !(defined(__AVX2__) && defined(__FMA__))
#define CC_X86_MULTIVERSION 1
#else
#define CC_X86_MULTIVERSION 0
#endif

/* One hardware vector of VL floats: 8 on x86-64 (AVX2 ymm; the SSE2 baseline
 * splits it in two), 4 on aarch64, where a wider generic vector is lowered
 * through the stack by GCC (measured: ~1.8 instructions per multiply-add
 * instead of ~0.3), since NEON registers hold 4 floats. Unaligned
 * loads/stores go through memcpy (well defined, one vmovups / ldr q). */
#if defined(__aarch64__)
#define VL 4
#else
#define VL 8
#endif
typedef float vfl __attribute__((vector_size(VL * sizeof(float))));

CC_ALWAYS_INLINE vfl ldv(const float* p) {
  vfl v;
  memcpy(&v, p, sizeof(v));
  return v;
}
CC_ALWAYS_INLINE void stv(float* p, vfl v) { memcpy(p, &v, sizeof(v)); }

/* ------------------------------------------------------------ activations */

static const struct {
  const char* name;
  int id;
} kActivationNames[] = {
    {"linear", CC_ACT_LINEAR},
    {"None", CC_ACT_LINEAR},
    {"relu", CC_ACT_RELU},
    {"relu6", CC_ACT_RELU6},
    {"sigmoid", CC_ACT_SIGMOID},
    {"tanh", CC_ACT_TANH},
    {"elu", CC_ACT_ELU},
    {"selu", CC_ACT_SELU},
    {"softplus", CC_ACT_SOFTPLUS},
    {"softsign", CC_ACT_SOFTSIGN},
    {"silu", CC_ACT_SILU},
    {"swish", CC_ACT_SILU},
    {"gelu", CC_ACT_GELU},
    {"leaky_relu", CC_ACT_LEAKY_RELU},
    {"hard_sigmoid", CC_ACT_HARD_SIGMOID},
    {"hard_silu", CC_ACT_HARD_SILU},
    {"hard_swish", CC_ACT_HARD_SILU},
    {"mish", CC_ACT_MISH},
    {"exponential", CC_ACT_EXPONENTIAL},
};

int cc_activation_from_name(const char* name, size_t len) {
  if (name == NULL) return -1;
  for (size_t i = 0; i < sizeof(kActivationNames) / sizeof(kActivationNames[0]); ++i) {
    const char* n = kActivationNames[i].name;
    if (strlen(n) == len && memcmp(n, name, len) == 0) return kActivationNames[i].id;
  }
  return -1;
}

const char* cc_activation_names(void) {
  return "linear, relu, relu6, sigmoid, tanh, elu, selu, softplus, softsign, silu (swish), "
         "gelu, leaky_relu, hard_sigmoid, hard_silu (hard_swish), mish, exponential";
}

static float softplusf(float v) {
  /* log(1 + exp(v)) without overflow */
  return v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v));
}

void cc_apply_activation(int act, float* v, size_t n) {
  size_t i;
  switch (act) {
    case CC_ACT_LINEAR:
      return;
    case CC_ACT_RELU:
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
      return;
    case CC_ACT_RELU6:
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? (v[i] < 6.0f ? v[i] : 6.0f) : 0.0f;
      return;
    case CC_ACT_SIGMOID:
      for (i = 0; i < n; ++i) v[i] = 1.0f / (1.0f + expf(-v[i]));
      return;
    case CC_ACT_TANH:
      for (i = 0; i < n; ++i) v[i] = tanhf(v[i]);
      return;
    case CC_ACT_ELU:
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : expm1f(v[i]);
      return;
    case CC_ACT_SELU: {
      const float scale = 1.05070098735548049342f, alpha = 1.67326324235437728482f;
      for (i = 0; i < n; ++i) v[i] = scale * (v[i] > 0.0f ? v[i] : alpha * expm1f(v[i]));
      return;
    }
    case CC_ACT_SOFTPLUS:
      for (i = 0; i < n; ++i) v[i] = softplusf(v[i]);
      return;
    case CC_ACT_SOFTSIGN:
      for (i = 0; i < n; ++i) v[i] = v[i] / (1.0f + fabsf(v[i]));
      return;
    case CC_ACT_SILU:
      for (i = 0; i < n; ++i) v[i] = v[i] / (1.0f + expf(-v[i]));
      return;
    case CC_ACT_GELU: /* Keras default: exact (erf) form */
      for (i = 0; i < n; ++i) v[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.70710678118654752f));
      return;
    case CC_ACT_LEAKY_RELU: /* keras.activations.leaky_relu default slope 0.2 */
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.2f * v[i];
      return;
    case CC_ACT_HARD_SIGMOID: /* Keras 3: relu6(x + 3) / 6 */
      for (i = 0; i < n; ++i) {
        float t = v[i] + 3.0f;
        t = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
        v[i] = t / 6.0f;
      }
      return;
    case CC_ACT_HARD_SILU:
      for (i = 0; i < n; ++i) {
        float t = v[i] + 3.0f;
        t = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
        v[i] = v[i] * t / 6.0f;
      }
      return;
    case CC_ACT_MISH:
      for (i = 0; i < n; ++i) v[i] = v[i] * tanhf(softplusf(v[i]));
      return;
    case CC_ACT_EXPONENTIAL:
      for (i = 0; i < n; ++i) v[i] = expf(v[i]);
      return;
    default:
      return; /* validated by the caller */
  }
}

/* Policy decision: sigmoid(z) > threshold, with sigmoid correctly rounded to
 * float like the float32 reference computes it. */
CC_ALWAYS_INLINE uint8_t gate_on(float z, float threshold) {
  float sigma = (float)(1.0 / (1.0 + exp(-(double)z)));
  return sigma > threshold ? 1 : 0;
}

/* max over n floats of their bits with the sign cleared (|v|'s bits): for
 * finite values the magnitude bits order like the values, +-Inf gives
 * 0x7f800000 and NaN more, so one unsigned integer max (which vectorizes;
 * a float sum would be a serial chain without -ffast-math) serves both
 * max_abs and all_finite. */
typedef uint32_t vu32 __attribute__((vector_size(VL * sizeof(uint32_t))));

CC_ALWAYS_INLINE vu32 max_lanes_u32(vu32 a, vu32 b) {
  const vu32 a_greater = (vu32)(a > b); /* all ones where a > b */
  return (a & a_greater) | (b & ~a_greater);
}

CC_ALWAYS_INLINE uint32_t max_magnitude_bits(const float* x, size_t n) {
  typedef vu32 vu;
  const vu magnitude = (vu){0} + 0x7fffffffu;
  vu m0 = (vu){0}, m1 = (vu){0};
  size_t r = 0;
  for (; r + 2 * VL <= n; r += 2 * VL) {
    vu v0, v1;
    memcpy(&v0, x + r, sizeof(v0));
    memcpy(&v1, x + r + VL, sizeof(v1));
    v0 &= magnitude;
    v1 &= magnitude;
    m0 = max_lanes_u32(v0, m0);
    m1 = max_lanes_u32(v1, m1);
  }
  m0 = max_lanes_u32(m0, m1);
  uint32_t lanes[VL], best = 0;
  memcpy(lanes, &m0, sizeof(lanes));
  for (int l = 0; l < VL; ++l) best = lanes[l] > best ? lanes[l] : best;
  for (; r < n; ++r) {
    uint32_t bits;
    memcpy(&bits, x + r, sizeof(bits));
    bits &= 0x7fffffffu;
    best = bits > best ? bits : best;
  }
  return best;
}

/* 1 iff all n values are finite (no NaN, no +-Inf). */
CC_ALWAYS_INLINE int all_finite(const float* x, size_t n) {
  return max_magnitude_bits(x, n) < 0x7f800000u;
}

static void fill_nan(float* y, size_t n) {
  const float nan = __builtin_nanf("");
  for (size_t i = 0; i < n; ++i) y[i] = nan;
}

/* scale_by_gate, phase 1: each block's gate value, sigmoid(z) if on, else 0
 * (a NaN logit, from non-finite policy weights, scales a block that top_k
 * still had to pick to NaN). */
static void store_gate_scale(const float* z, const uint8_t* mask, int K, float* gate) {
  for (int k = 0; k < K; ++k) gate[k] = mask[k] ? 1.0f / (1.0f + expf(-z[k])) : 0.0f;
}

/* scale_by_gate, phase 2: one computed block's bs outputs times its gate value. */
static void scale_block(float* y, int bs, const float* gate_scale, size_t at) {
  if (gate_scale == NULL) return;
  const float g = gate_scale[at];
  for (int c = 0; c < bs; ++c) y[c] *= g;
}

/* The top_k rule (keras_condcomp.reference.top_k_mask): mask = the k blocks
 * of largest logit z (= largest sigma, ranked before rounding makes saturated
 * sigmas equal), lowest index first on ties, NaN below every number.
 * O(K * k) compares. */
static void top_k_mask(const float* z, int K, int k, uint8_t* mask) {
  for (int b = 0; b < K; ++b) mask[b] = 0;
  for (int r = 0; r < k && r < K; ++r) {
    int best = -1;
    for (int b = 0; b < K; ++b) {
      if (mask[b]) continue;
      if (best < 0 || z[b] > z[best] || (isnan(z[best]) && !isnan(z[b]))) best = b;
    }
    mask[best] = 1;
  }
}

/* gate_on without the exp for logits clearly on either side of the threshold:
 * z >= on_from is on and z <= off_to is off (both checked with gate_on
 * itself, which is monotone in z), with a margin of many float ulps of
 * sigmoid around logit(threshold); logits in between (and NaN) take the exact
 * path, so decisions are the same as gate_on's. */
typedef struct {
  float on_from, off_to;
  int use;
} gate_bounds;

static gate_bounds make_gate_bounds(float threshold) {
  gate_bounds g = {0.0f, 0.0f, 0};
  if (!(threshold >= 1e-30f && threshold < 1.0f)) return g;
  const double t = threshold;
  const double z = log(t / (1.0 - t));
  const double m = 1e-3 * (1.0 + fabs(z)) + 4e-7 / (1.0 - t);
  g.on_from = (float)(z + m);
  g.off_to = (float)(z - m);
  g.use = gate_on(g.on_from, threshold) == 1 && gate_on(g.off_to, threshold) == 0;
  return g;
}

CC_ALWAYS_INLINE uint8_t gate_on_fast(float z, float threshold, const gate_bounds* g) {
  if (g->use) {
    if (z >= g->on_from) return 1;
    if (z <= g->off_to) return 0;
  }
  return gate_on(z, threshold);
}

/* ------------------------------------------------------------ hot loop */

/* Examples sharing one pass over a weight tile. */
#ifndef CC_GROUP
#define CC_GROUP 8
#endif

/* accumulate_group / accumulate_one: the float weight-tile loops. */
#define CC_WT float
#define CC_LOADW(p) ldv(p)
#define CC_SUF
#include "condcomp_tile.inc"

/* ------------------------------------------------------------------ dense */

/* 1 iff any of xb[0:n] is non-zero (NaN counts as non-zero, -0.0 as zero):
 * ORs the bit patterns without the sign bit, 8 vectors at a time, and tests
 * once per 8 vectors (no per-lane extraction in the loop). */
CC_ALWAYS_INLINE int any_nonzero(const float* xb, int n) {
  typedef uint32_t vu __attribute__((vector_size(VL * sizeof(uint32_t))));
  const vu magnitude = (vu){0} + 0x7fffffffu;
  int d = 0;
  while (d + VL <= n) {
    vu acc = (vu){0};
    const int stop = n - d >= 8 * VL ? d + 8 * VL : n - (n - d) % VL;
    for (; d < stop; d += VL) {
      vu v;
      memcpy(&v, xb + d, sizeof(v));
      acc |= v;
    }
    acc &= magnitude;
    uint64_t h[VL / 2], any = 0;
    memcpy(h, &acc, sizeof(h));
    for (int q = 0; q < VL / 2; ++q) any |= h[q];
    if (any != 0) return 1;
  }
  for (; d < n; ++d)
    if (xb[d] != 0.0f) return 1;
  return 0;
}

/* --------------------------------------- int8 activations (phase 1) */

/* max |x| over n finite floats (phase 1 has checked them). */
CC_ALWAYS_INLINE float max_abs(const float* x, int n) {
  const uint32_t bits = max_magnitude_bits(x, (size_t)n);
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

CC_ALWAYS_INLINE void quantize_values_scalar(const float* x, int n, double k, int8_t* xq) {
  for (int r = 0; r < n; ++r) {
    double v = nearbyint((double)x[r] * k);
    v = v > 127.0 ? 127.0 : v < -127.0 ? -127.0 : v;
    xq[r] = (int8_t)v;
  }
}

typedef void (*quantize_fn)(const float* x, int n, int padded, double k, int8_t* xq);

static void quantize_values_default(const float* x, int n, int padded, double k, int8_t* xq) {
  quantize_values_scalar(x, n, k, xq);
  memset(xq + n, 0, (size_t)(padded - n));
}

#if defined(__x86_64__) || defined(__i386__)
/* The same values 16 at a time: float -> double, multiply, round half to
 * even (the mode nearbyint uses by default, here explicit), clamp, and the
 * integral doubles in [-127, 127] converted and packed to bytes exactly. */
__attribute__((target("avx2,fma"), unused)) static void quantize_values_avx2(const float* x, int n,
                                                                             int padded, double k,
                                                                             int8_t* xq) {
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

__attribute__((target("avx512f,avx512vl,avx2,fma"), unused)) static void quantize_values_avx512(
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

#if CC_X86_MULTIVERSION
static int have_avx2_fma(void);
static int have_avx512(void);
#endif

/* n activations as int8: xq = clamp(round-half-even(x * k), -127, 127)
 * computed in double (defined for subnormal scales too), zero-padded to
 * `padded`. k = 127 / max|x| for per-example scales (scale max|x| / 127),
 * 1 / input_scale for static ones. keras_condcomp.reference.quantize_activations
 * is the same computation. Every variant gives the same bytes. */
static quantize_fn select_quantize(void) {
#if CC_X86_MULTIVERSION
  if (have_avx512()) return quantize_values_avx512;
  if (have_avx2_fma()) return quantize_values_avx2;
#elif defined(__AVX512F__) && defined(__AVX512VL__)
  return quantize_values_avx512;
#elif defined(__AVX2__) && defined(__FMA__)
  return quantize_values_avx2;
#endif
  return quantize_values_default;
}

/* Input block i's scale and the factor k that the quantize step applies: static
 * (input_scale) or from m = max |x| over the block; an all-zero block (m = 0,
 * per-example scales) gets scale 0 and is never read. */
CC_ALWAYS_INLINE float block_scale(const float* input_scale, int i, float m, double* k) {
  if (input_scale != NULL) {
    *k = 1.0 / (double)input_scale[i];
    return input_scale[i];
  }
  *k = m > 0.0f ? 127.0 / (double)m : 0.0;
  return m / 127.0f;
}

/* Phase 1's int8 step for example e (input finite, in_active set): one scale
 * per input block (select_quantize: 16 values per step with AVX2 or
 * AVX-512). */
CC_ALWAYS_INLINE void quantize_example(const cc_gated_dense* p, int e) {
  const quantize_fn quantize = select_quantize();
  const int ibs = p->in_block_size, n_in = p->in_dim / ibs, padded = (ibs + 3) / 4 * 4;
  const uint8_t* act = p->in_active + (size_t)e * n_in;
  for (int i = 0; i < n_in; ++i) {
    const size_t b = (size_t)e * n_in + i;
    const float* x = p->x + (size_t)e * p->in_dim + (size_t)i * ibs;
    const float m = act[i] && p->input_scale == NULL ? max_abs(x, ibs) : 0.0f;
    double k;
    p->xq_scale[b] = block_scale(p->input_scale, i, m, &k);
    if (act[i] && k > 0.0) quantize(x, ibs, padded, k, p->xq + b * padded);
  }
}

/* Phase 1's int8 step for example e of a conv (input finite, in_active set):
 * one scale per channel block over all positions. */
CC_ALWAYS_INLINE void quantize_conv_example(const cc_gated_conv2d* p, int e) {
  const quantize_fn quantize = select_quantize();
  const int C = p->in_c, ibs = p->in_block_size, n_in = C / ibs, padded = (ibs + 3) / 4 * 4;
  const size_t hw = (size_t)p->in_h * p->in_w;
  const float* xe = p->x + (size_t)e * hw * C;
  const uint8_t* act = p->in_active + (size_t)e * n_in;
  for (int i = 0; i < n_in; ++i) {
    float m = 0.0f;
    if (act[i] && p->input_scale == NULL) {
      for (size_t s = 0; s < hw; ++s) {
        const float ms = max_abs(xe + s * C + (size_t)i * ibs, ibs);
        m = ms > m ? ms : m;
      }
    }
    double k;
    p->xq_scale[(size_t)e * n_in + i] = block_scale(p->input_scale, i, m, &k);
    if (!act[i] || k == 0.0) continue;
    for (size_t s = 0; s < hw; ++s)
      quantize(xe + s * C + (size_t)i * ibs, ibs, padded, k,
               p->xq + (((size_t)e * hw + s) * n_in + i) * padded);
  }
}

/* Phase 1 of dense examples [e_begin, e_end): input checks and non-zero
 * input blocks per example, then the policy product for groups of up to
 * CC_GATE_GROUP consecutive finite examples with the same non-zero input
 * blocks (one pass over the policy rows serves the group: accumulate_group),
 * then each example's int8 activations and mask. */
CC_ALWAYS_INLINE void dense_gate_impl(const cc_gated_dense* p, int e_begin, int e_end,
                                      float* logits) {
  const int D = p->in_dim, K = p->num_blocks, ibs = p->in_block_size;
  const int n_in = D / ibs;
  const gate_bounds gb = make_gate_bounds(p->threshold);
  for (int e = e_begin; e < e_end; ++e) {
    const float* x = p->x + (size_t)e * D;
    uint8_t* act = p->in_active + (size_t)e * n_in;
    if (!all_finite(x, (size_t)D)) {
      memset(p->out_mask + (size_t)e * K, CC_ROW_NONFINITE, (size_t)K);
      memset(act, 0, (size_t)n_in);
      continue;
    }
    for (int i = 0; i < n_in; ++i) act[i] = (uint8_t)any_nonzero(x + (size_t)i * ibs, ibs);
    p->out_mask[(size_t)e * K] = 0; /* not CC_ROW_NONFINITE: this row is finite */
  }
  for (int e0 = e_begin; e0 < e_end;) {
    if (p->out_mask[(size_t)e0 * K] == CC_ROW_NONFINITE) {
      ++e0;
      continue;
    }
    const uint8_t* act = p->in_active + (size_t)e0 * n_in;
    int members[CC_GATE_GROUP];
    int G = 0;
    for (int e = e0; e < e_end && G < CC_GATE_GROUP; ++e) {
      if (p->out_mask[(size_t)e * K] == CC_ROW_NONFINITE) continue;
      if (memcmp(p->in_active + (size_t)e * n_in, act, (size_t)n_in) != 0) break;
      members[G++] = e;
    }
    const float* xs[CC_GATE_GROUP];
    float* ys[CC_GATE_GROUP];
    for (int g = 0; g < G; ++g) {
      ys[g] = logits + (size_t)g * K;
      for (int k = 0; k < K; ++k) ys[g][k] = p->policy_bias[k];
    }
    /* Policy over each run of consecutive non-zero input blocks: the rows of
     * policy_kernel [D][K] of a run are contiguous. */
    for (int i = 0; i < n_in;) {
      if (!act[i]) {
        ++i;
        continue;
      }
      int i1 = i + 1;
      while (i1 < n_in && act[i1]) ++i1;
      const size_t d0 = (size_t)i * ibs;
      const float* w = p->policy_kernel + d0 * K;
      if (G == 1) {
        accumulate_one(w, (size_t)K, K, (i1 - i) * ibs, p->x + (size_t)members[0] * D + d0, 1,
                       ys[0]);
      } else {
        for (int g = 0; g < G; ++g) xs[g] = p->x + (size_t)members[g] * D + d0;
        accumulate_group(G, w, (size_t)K, K, (i1 - i) * ibs, xs, 1, ys);
      }
      i = i1;
    }
    for (int g = 0; g < G; ++g) {
      const int e = members[g];
      uint8_t* mask = p->out_mask + (size_t)e * K;
      if (p->kernel_q != NULL) quantize_example(p, e);
      if (p->top_k > 0) {
        top_k_mask(ys[g], K, p->top_k, mask);
      } else {
        for (int k = 0; k < K; ++k) mask[k] = gate_on_fast(ys[g][k], p->threshold, &gb);
      }
      if (p->gate_scale) store_gate_scale(ys[g], mask, K, p->gate_scale + (size_t)e * K);
    }
    e0 = members[G - 1] + 1;
  }
}

/* The first input block >= start that some example of examples[0:n] has
 * non-zero (n_in if none): the next weight tile an output block needs. */
CC_ALWAYS_INLINE int next_needed_input_block(const cc_gated_dense* p, const int* examples, int n,
                                             int n_in, int start) {
  for (int i = start; i < n_in; ++i) {
    for (int a = 0; a < n; ++a)
      if (p->in_active[(size_t)examples[a] * n_in + i]) return i;
  }
  return n_in;
}

/* Output block j with float weights (int8 weights: dense_block_q8). */
CC_ALWAYS_INLINE uint64_t dense_block_impl(const cc_gated_dense* p, int j, int* examples) {
  const int B = p->batch, D = p->in_dim, K = p->num_blocks, bs = p->block_size;
  const float* bias_j = p->bias ? p->bias + (size_t)j * bs : NULL;
  const int ibs = p->in_block_size, n_in = D / ibs;
  const size_t units = (size_t)K * bs;
  int* on = examples;        /* examples with block j on */
  int* group = examples + B; /* of those, the ones with input block i non-zero */
  int n_on = 0;
  uint64_t macs = 0;
  for (int e = 0; e < B; ++e) {
    float* y = p->y + (size_t)e * units + (size_t)j * bs;
    const uint8_t m = p->out_mask[(size_t)e * K + j];
    if (m == CC_ROW_NONFINITE) {
      fill_nan(y, (size_t)bs);
    } else if (m) {
      on[n_on++] = e;
      if (bias_j) {
        memcpy(y, bias_j, sizeof(float) * bs);
      } else {
        memset(y, 0, sizeof(float) * bs);
      }
    } else {
      memset(y, 0, sizeof(float) * bs);
    }
  }
  if (n_on == 0) return 0;
  const float* wj = p->kernel_bm + (size_t)j * D * bs;
  if (n_on == 1) {
    /* One example (batch 1): each run of consecutive non-zero input blocks is
     * one contiguous run of weight rows, accumulated in registers. */
    const int e = on[0];
    const uint8_t* act = p->in_active + (size_t)e * n_in;
    const float* x = p->x + (size_t)e * D;
    float* y = p->y + (size_t)e * units + (size_t)j * bs;
    int i = 0;
    while (i < n_in && !act[i]) ++i;
    while (i < n_in) {
      int i1 = i + 1;
      while (i1 < n_in && act[i1]) ++i1;
      int i2 = i1;
      while (i2 < n_in && !act[i2]) ++i2;
      const size_t d0 = (size_t)i * ibs;
      const int rows = (i1 - i) * ibs;
      accumulate_one(wj + d0 * bs, (size_t)bs, bs, rows, x + d0, 1, y);
      macs += (uint64_t)rows * bs;
      i = i2;
    }
    cc_apply_activation(p->activation, y, (size_t)bs);
    scale_block(y, bs, p->gate_scale, (size_t)e * K + j);
    return macs;
  }
  for (int i = 0; i < n_in; ++i) {
    int n = 0;
    for (int a = 0; a < n_on; ++a) {
      if (p->in_active[(size_t)on[a] * n_in + i]) group[n++] = on[a];
    }
    const size_t tile = (size_t)i * ibs * bs;
    for (int g0 = 0; g0 < n; g0 += CC_GROUP) {
      const int G = n - g0 < CC_GROUP ? n - g0 : CC_GROUP;
      const float* xs[CC_GROUP];
      float* ys[CC_GROUP];
      for (int g = 0; g < G; ++g) {
        const int e = group[g0 + g];
        xs[g] = p->x + (size_t)e * D + (size_t)i * ibs;
        ys[g] = p->y + (size_t)e * units + (size_t)j * bs;
      }
      accumulate_group(G, wj + tile, (size_t)bs, bs, ibs, xs, 1, ys);
    }
    macs += (uint64_t)n * ibs * bs;
  }
  for (int a = 0; a < n_on; ++a) {
    float* y = p->y + (size_t)on[a] * units + (size_t)j * bs;
    cc_apply_activation(p->activation, y, (size_t)bs);
    scale_block(y, bs, p->gate_scale, (size_t)on[a] * K + j);
  }
  return macs;
}

/* ------------------------------------------- dense, int8 (dynamic range) */

/* Integer dot products of int8 activations with int8 weights over one strip
 * of a packed tile: `cols` <= CC_Q8_STRIP outputs, stored [Q][cols][4] (quad
 * q holds rows 4q..4q+3 of each output, rows past the block are 0 in both),
 * so a strip is one contiguous run read front to back. Every kernel computes,
 * exactly in int32, acc[c] = sum_r xq[r] * w(r, c), then y[c] += s * acc[c]:
 * only that last float step can differ between kernels (fused or not).
 * |xq|, |w| <= 127 (never -128), so no product pair or sum overflows. */
#define CC_Q8_STRIP 32
/* n pixels (a conv's output columns; 1 for dense) against the same strip:
 * pixel p reads xq + p * x_step and adds into y + p * y_step, so the
 * per-call costs are paid once per row of pixels, not per pixel. */
typedef void (*dot_q8_fn)(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step,
                          float s, float* y, size_t y_step, int n);
/* 2 <= n <= CC_Q8_GROUP examples (their activations xq[g], scales s[g], outputs
 * y[g]) against one full strip of CC_Q8_STRIP outputs, each weight byte
 * loaded once for the group: y[g] += s[g] * (xq[g] . w). NULL where this CPU
 * has no such kernel (then each example takes dot_q8_fn). */
#define CC_Q8_GROUP 4
typedef void (*dot_q8_group_fn)(const int8_t* w, int Q, int n, const int8_t* const* xq,
                                const float* s, float* const* y);
/* One example against n full strips (t = 0..n-1, at tiles[t] + offset, with
 * the activations xq[t] and scales s[t] of their input blocks), in turn:
 * y[0:CC_Q8_STRIP] += s[t] * (xq[t] . w_t). NULL where this CPU has none. */
#define CC_Q8_TILES 16
typedef void (*dot_q8_tiles_fn)(const int8_t* const* tiles, size_t offset, int Q, int n,
                                const int8_t* const* xq, const float* s, float* y);
/* A conv's n <= CC_Q8_CONV_PIXELS output pixels against the strips of
 * `taps` taps (tap t's strip at w + t * w_tap_step, the activations pixel p
 * reads for it at xq + t * x_tap_step + p * x_step), the int32 sums over all
 * taps taken before the one float step: y[p] += s * sum_t (xq . w_t), for
 * strips of 8, 16 or 32 outputs and taps * Q within CC_Q8_MAX_QUADS. NULL
 * where this CPU has none. */
#define CC_Q8_CONV_PIXELS 8
typedef void (*dot_q8_conv_fn)(const int8_t* w, size_t w_tap_step, int taps, int Q, int cols,
                               const int8_t* xq, size_t x_tap_step, size_t x_step, int n, float s,
                               float* y, size_t y_step);
#define CC_Q8_PIXELS(name, one)                                                                \
  static void name(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step, float s, \
                   float* y, size_t y_step, int n) {                                           \
    for (int p = 0; p < n; ++p)                                                                \
      one(w, Q, cols, xq + (size_t)p * x_step, s, y + (size_t)p * y_step);                     \
  }

/* Columns [0, n) of a strip whose quads are `ld` bytes apart. Portable C
 * (the x86-64 SSE2 baseline, other CPUs, the vector kernels' last columns). */
static void dot_q8_columns(const int8_t* w, size_t ld, int Q, int n, const int8_t* xq, float s,
                           float* y) {
  int32_t acc[CC_Q8_STRIP] = {0};
  for (int q = 0; q < Q; ++q) {
    const int8_t* wq = w + q * ld;
    const int32_t x0 = xq[4 * q], x1 = xq[4 * q + 1], x2 = xq[4 * q + 2], x3 = xq[4 * q + 3];
    for (int c = 0; c < n; ++c)
      acc[c] += x0 * wq[4 * c] + x1 * wq[4 * c + 1] + x2 * wq[4 * c + 2] + x3 * wq[4 * c + 3];
  }
  for (int c = 0; c < n; ++c) y[c] += s * (float)acc[c];
}

static void dot_q8_generic_one(const int8_t* w, int Q, int cols, const int8_t* xq, float s,
                               float* y) {
  dot_q8_columns(w, (size_t)cols * 4, Q, cols, xq, s, y);
}
CC_Q8_PIXELS(dot_q8_generic, dot_q8_generic_one)

#if defined(__x86_64__) || defined(__i386__)
/* One quad (4 activation bytes at xq4, broadcast as xs, xa = |xs|) against
 * the 128 weight bytes at wp: 32 outputs into the accumulators c0..c3. */
#define CC_Q8_X86_QUAD(STEP, xq4, wp, c0, c1, c2, c3) \
  do {                                                \
    int32_t word_;                                    \
    memcpy(&word_, (xq4), sizeof(word_));             \
    const __m256i xs = _mm256_set1_epi32(word_);      \
    const __m256i xa = _mm256_abs_epi8(xs);           \
    STEP(c0, (wp));                                   \
    STEP(c1, (wp) + 32);                              \
    STEP(c2, (wp) + 64);                              \
    STEP(c3, (wp) + 96);                              \
  } while (0)

/* One body for the x86-64 int8 kernels; STEP(acc, wp) adds the products of
 * the 4 activation bytes in xs (broadcast; xa = |xs|) with the 32 weight bytes
 * at wp into acc's 8 int32 lanes, one per output. */
#define CC_Q8_X86_KERNEL(name, TARGET, STEP)                                                       \
  __attribute__((target(TARGET))) CC_ALWAYS_INLINE void name##_one(                                \
      const int8_t* w, int Q, int cols, const int8_t* xq, float s, float* y) {                     \
    const __m256 sv = _mm256_set1_ps(s);                                                           \
    const size_t ld = (size_t)cols * 4;                                                            \
    if (cols == CC_Q8_STRIP) { /* the common case: 128 bytes per quad */                           \
      /* Two quads per iteration into two sets of 4 accumulators, so that an                       \
       * accumulating vpdpbusd (latency ~5 cycles) has 8 independent chains. */                    \
      __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;                              \
      __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                                  \
      const int8_t* wp = w;                                                                        \
      int q = 0;                                                                                   \
      for (; q + 2 <= Q; q += 2, wp += 256) {                                                      \
        CC_Q8_X86_QUAD(STEP, xq + 4 * q, wp, a0, a1, a2, a3);                                      \
        CC_Q8_X86_QUAD(STEP, xq + 4 * q + 4, wp + 128, b0, b1, b2, b3);                            \
      }                                                                                            \
      if (q < Q) CC_Q8_X86_QUAD(STEP, xq + 4 * q, wp, a0, a1, a2, a3);                             \
      /* exact: each int32 lane's total is the same sum, split in two */                           \
      const __m256i acc[4] = {_mm256_add_epi32(a0, b0), _mm256_add_epi32(a1, b1),                  \
                              _mm256_add_epi32(a2, b2), _mm256_add_epi32(a3, b3)};                 \
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
        STEP(a0, wp);                                                                              \
        if (two) STEP(a1, wp + 32);                                                                \
      }                                                                                            \
      _mm256_storeu_ps(y + c,                                                                      \
                       _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), sv, _mm256_loadu_ps(y + c)));       \
      if (two)                                                                                     \
        _mm256_storeu_ps(y + c + 8,                                                                \
                         _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1), sv, _mm256_loadu_ps(y + c + 8))); \
      c += two ? 16 : 8;                                                                           \
    }                                                                                              \
    if (c < cols) dot_q8_columns(w + (size_t)c * 4, ld, Q, cols - c, xq, s, y + c);                \
  }                                                                                                \
  __attribute__((target(TARGET))) CC_Q8_PIXELS(name, name##_one)

/* The weight bytes at wp with the activation's sign moved onto them
 * (vpsignb): the unsigned x signed products below then see |x| <= 127. */
#define CC_Q8_SIGNED_W(wp) \
  _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)(const void*)(wp)), xs)

/* AVX2: vpmaddubsw (unsigned x signed bytes): a pair sum is at most
 * 2 * 127 * 127 < 2^15, no saturation. Then vpmaddwd with ones sums the
 * pairs: 32 multiply-adds per 4 instructions (XNNPACK's AVX2 int8 kernels
 * widen to 16 bits: 16 per 3). */
#define CC_Q8_AVX2_STEP(acc, wp) \
  acc = _mm256_add_epi32(        \
      acc, _mm256_madd_epi16(_mm256_maddubs_epi16(xa, CC_Q8_SIGNED_W(wp)), _mm256_set1_epi16(1)))
CC_Q8_X86_KERNEL(dot_q8_avx2, "avx2,fma", CC_Q8_AVX2_STEP)
#undef CC_Q8_AVX2_STEP

/* VNNI: vpdpbusd does the 4 products and the int32 sum in one instruction
 * (no intermediate saturation), on ymm registers: AVX512-VNNI + AVX512VL
 * (EVEX; Ice Lake / Sapphire Rapids Xeons, Zen 4) or AVX-VNNI (VEX; Alder
 * Lake and later cores without AVX-512), the same code. Built by GCC only
 * (Clang builds keep the AVX2 kernel). No CPU here has either extension:
 * CC_Q8_VNNI_EMULATED (a test build, tests/test_native_fuzz.py) runs this
 * code on AVX2 with SIMDe's vpdpbusd, so the kernel logic is fuzzed against
 * the reference; the instruction itself is not run here. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define CC_HAVE_VNNI_CLONE 1
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
#define CC_Q8_VNNI_EVEX_STEP(acc, wp) acc = CC_Q8_DPBUSD_EVEX(acc, xa, CC_Q8_SIGNED_W(wp))
CC_Q8_X86_KERNEL(dot_q8_avx512vnni, CC_Q8_TARGET_EVEX, CC_Q8_VNNI_EVEX_STEP)
#undef CC_Q8_VNNI_EVEX_STEP
#undef CC_Q8_DPBUSD_EVEX
#undef CC_Q8_TARGET_EVEX
#if !defined(CC_Q8_VNNI_EMULATED) /* the emulated build runs the EVEX kernel only */
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

/* The int32 sums xq . w of one full strip, its 32 outputs in two zmm. */
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_zmm_sums(
    const int8_t* w, int Q, const int8_t* xq, __m512i* sum_lo, __m512i* sum_hi) {
  __m512i lo[4], hi[4];
  for (int u = 0; u < 4; ++u) lo[u] = hi[u] = _mm512_setzero_si512();
  int q = 0;
  for (; q + 4 <= Q; q += 4)
    for (int u = 0; u < 4; ++u)
      dot_q8_zmm_quad(w + (size_t)(q + u) * 128, xq + 4 * (q + u), &lo[u], &hi[u]);
  for (; q < Q; ++q) dot_q8_zmm_quad(w + (size_t)q * 128, xq + 4 * q, &lo[0], &hi[0]);
  /* exact: each int32 lane's total is the same sum, split in four */
  *sum_lo = _mm512_add_epi32(_mm512_add_epi32(lo[0], lo[1]), _mm512_add_epi32(lo[2], lo[3]));
  *sum_hi = _mm512_add_epi32(_mm512_add_epi32(hi[0], hi[1]), _mm512_add_epi32(hi[2], hi[3]));
}

__attribute__((target(CC_Q8_ZMM_TARGET))) CC_ALWAYS_INLINE void dot_q8_avx512vnni_zmm_one(
    const int8_t* w, int Q, int cols, const int8_t* xq, float s, float* y) {
  if (cols != CC_Q8_STRIP) {
    dot_q8_avx512vnni_one(w, Q, cols, xq, s, y);
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
 * Each next strip is prefetched while the current one is summed (it lies
 * elsewhere: the tiles of skipped input blocks are between). */
__attribute__((target(CC_Q8_ZMM_TARGET))) static void dot_q8_avx512vnni_zmm_tiles(
    const int8_t* const* tiles, size_t offset, int Q, int n, const int8_t* const* xq,
    const float* s, float* y) {
  __m512 y_lo = _mm512_loadu_ps(y), y_hi = _mm512_loadu_ps(y + 16);
  for (int t = 0; t < n; ++t) {
    if (t + 1 < n) {
      const char* next = (const char*)(tiles[t + 1] + offset);
      for (size_t b = 0; b < (size_t)Q * 128; b += 64) __builtin_prefetch(next + b, 0, 2);
    }
    __m512i sum_lo, sum_hi;
    dot_q8_zmm_sums(tiles[t] + offset, Q, xq[t], &sum_lo, &sum_hi);
    const __m512 sv = _mm512_set1_ps(s[t]);
    y_lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_lo), sv, y_lo);
    y_hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_hi), sv, y_hi);
  }
  _mm512_storeu_ps(y, y_lo);
  _mm512_storeu_ps(y + 16, y_hi);
}
__attribute__((target(CC_Q8_ZMM_TARGET))) CC_Q8_PIXELS(dot_q8_avx512vnni_zmm,
                                                       dot_q8_avx512vnni_zmm_one)

    /* The 4 activation bytes at x made unsigned for vpdpbusd (unsigned x signed
     * bytes): xq + 128 = xq ^ 0x80, in [1, 255], as one int32 to broadcast. The
     * kernels below subtract the offset's share, 128 * sum w, kept in one
     * vpdpbusd chain of 0x80 bytes against the same weights. */
    CC_ALWAYS_INLINE int32_t q8_unsigned_quad(const int8_t* x) {
  int32_t word;
  memcpy(&word, x, sizeof(word));
  return word ^ (int32_t)0x80808080u;
}

/* 2 <= n <= CC_Q8_GROUP examples against one full strip (32 outputs), each
 * weight vector loaded once for all of them. With several examples the
 * activation's sign cannot move onto the shared weights, so the activations
 * are made unsigned instead (q8_unsigned_quad): sum (xq + 128) * w =
 * sum xq * w + 128 * sum w, the last term the chain c_lo, c_hi, subtracted
 * at the end. The int32 lanes wrap, but the difference is the exact
 * sum xq . w, which fits (|xq|, |w| <= 127, Q within CC_Q8_MAX_QUADS). */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_zmm_group_quad(
    const int8_t* w, int q, const int n, const int8_t* const* xq, __m512i* c_lo, __m512i* c_hi,
    __m512i* lo, __m512i* hi) {
  const int8_t* wp = w + (size_t)q * 128;
  const __m512i w0 = _mm512_loadu_si512((const void*)wp);
  const __m512i w1 = _mm512_loadu_si512((const void*)(wp + 64));
  const __m512i offset = _mm512_set1_epi8((char)0x80);
  *c_lo = _mm512_dpbusd_epi32(*c_lo, offset, w0);
  *c_hi = _mm512_dpbusd_epi32(*c_hi, offset, w1);
  for (int g = 0; g < n; ++g) {
    const __m512i xu = _mm512_set1_epi32(q8_unsigned_quad(xq[g] + 4 * q));
    lo[g] = _mm512_dpbusd_epi32(lo[g], xu, w0);
    hi[g] = _mm512_dpbusd_epi32(hi[g], xu, w1);
  }
}

/* U sets of accumulators over interleaved quads keep at least 8 vpdpbusd
 * chains in flight for small n; constant n and U keep them in registers. */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_zmm_group_n(
    const int8_t* w, int Q, const int n, const int U, const int8_t* const* xq, const float* s,
    float* const* y) {
  __m512i lo[2][CC_Q8_GROUP], hi[2][CC_Q8_GROUP], c_lo[2], c_hi[2];
  for (int u = 0; u < U; ++u) {
    c_lo[u] = c_hi[u] = _mm512_setzero_si512();
    for (int g = 0; g < n; ++g) lo[u][g] = hi[u][g] = _mm512_setzero_si512();
  }
  int q = 0;
  for (; q + U <= Q; q += U)
    for (int u = 0; u < U; ++u)
      dot_q8_zmm_group_quad(w, q + u, n, xq, &c_lo[u], &c_hi[u], lo[u], hi[u]);
  for (; q < Q; ++q) dot_q8_zmm_group_quad(w, q, n, xq, &c_lo[0], &c_hi[0], lo[0], hi[0]);
  for (int u = 1; u < U; ++u) {
    c_lo[0] = _mm512_add_epi32(c_lo[0], c_lo[u]);
    c_hi[0] = _mm512_add_epi32(c_hi[0], c_hi[u]);
  }
  for (int g = 0; g < n; ++g) {
    __m512i sum_lo = lo[0][g], sum_hi = hi[0][g];
    for (int u = 1; u < U; ++u) {
      sum_lo = _mm512_add_epi32(sum_lo, lo[u][g]);
      sum_hi = _mm512_add_epi32(sum_hi, hi[u][g]);
    }
    sum_lo = _mm512_sub_epi32(sum_lo, c_lo[0]);
    sum_hi = _mm512_sub_epi32(sum_hi, c_hi[0]);
    const __m512 sv = _mm512_set1_ps(s[g]);
    float* yg = y[g];
    _mm512_storeu_ps(yg, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_lo), sv, _mm512_loadu_ps(yg)));
    _mm512_storeu_ps(yg + 16,
                     _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_hi), sv, _mm512_loadu_ps(yg + 16)));
  }
}

__attribute__((target(CC_Q8_ZMM_TARGET))) static void dot_q8_avx512vnni_zmm_group(
    const int8_t* w, int Q, int n, const int8_t* const* xq, const float* s, float* const* y) {
  switch (n) { /* 2..CC_Q8_GROUP (dot_q8_examples sends a single example to dot_q8_fn) */
    case 2:
      dot_q8_zmm_group_n(w, Q, 2, 2, xq, s, y);
      break;
    case 3:
      dot_q8_zmm_group_n(w, Q, 3, 1, xq, s, y);
      break;
    default:
      dot_q8_zmm_group_n(w, Q, 4, 1, xq, s, y);
      break;
  }
}
/* MR output pixels x W zmm of outputs (a strip of 16 W columns, quads of
 * 64 W bytes) over `taps` taps: the pixels share each weight load through
 * the unsigned-offset activations of the group kernel above (one
 * correction chain per strip for all of them). MR * W + W accumulators. */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_zmm_conv_tile(
    const int8_t* w, size_t w_tap_step, int taps, int Q, const int8_t* xq, size_t x_tap_step,
    size_t x_step, const int MR, const int W, float s, float* y, size_t y_step) {
  __m512i acc[CC_Q8_CONV_PIXELS][2], corr[2];
  for (int v = 0; v < W; ++v) {
    corr[v] = _mm512_setzero_si512();
    for (int m = 0; m < MR; ++m) acc[m][v] = _mm512_setzero_si512();
  }
  const __m512i offset = _mm512_set1_epi8((char)0x80);
  for (int t = 0; t < taps; ++t) {
    const int8_t* wt = w + (size_t)t * w_tap_step;
    const int8_t* xt = xq + (size_t)t * x_tap_step;
    for (int q = 0; q < Q; ++q) {
      __m512i wv[2];
      for (int v = 0; v < W; ++v) {
        wv[v] = _mm512_loadu_si512((const void*)(wt + ((size_t)q * W + v) * 64));
        corr[v] = _mm512_dpbusd_epi32(corr[v], offset, wv[v]);
      }
      for (int m = 0; m < MR; ++m) {
        const __m512i xu = _mm512_set1_epi32(q8_unsigned_quad(xt + (size_t)m * x_step + 4 * q));
        for (int v = 0; v < W; ++v) acc[m][v] = _mm512_dpbusd_epi32(acc[m][v], xu, wv[v]);
      }
    }
  }
  const __m512 sv = _mm512_set1_ps(s);
  for (int m = 0; m < MR; ++m) {
    float* ym = y + (size_t)m * y_step;
    for (int v = 0; v < W; ++v) {
      const __m512i sum = _mm512_sub_epi32(acc[m][v], corr[v]);
      _mm512_storeu_ps(ym + 16 * v,
                       _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), sv, _mm512_loadu_ps(ym + 16 * v)));
    }
  }
}

/* The same for a strip of 8 outputs (quads of 32 bytes): one ymm per pixel. */
CC_ALWAYS_INLINE __attribute__((target(CC_Q8_ZMM_TARGET))) void dot_q8_ymm_conv_tile(
    const int8_t* w, size_t w_tap_step, int taps, int Q, const int8_t* xq, size_t x_tap_step,
    size_t x_step, const int MR, float s, float* y, size_t y_step) {
  __m256i acc[CC_Q8_CONV_PIXELS], corr = _mm256_setzero_si256();
  for (int m = 0; m < MR; ++m) acc[m] = _mm256_setzero_si256();
  const __m256i offset = _mm256_set1_epi8((char)0x80);
  for (int t = 0; t < taps; ++t) {
    const int8_t* wt = w + (size_t)t * w_tap_step;
    const int8_t* xt = xq + (size_t)t * x_tap_step;
    for (int q = 0; q < Q; ++q) {
      const __m256i wv = _mm256_loadu_si256((const __m256i*)(const void*)(wt + (size_t)q * 32));
      corr = _mm256_dpbusd_epi32(corr, offset, wv);
      for (int m = 0; m < MR; ++m) {
        const __m256i xu = _mm256_set1_epi32(q8_unsigned_quad(xt + (size_t)m * x_step + 4 * q));
        acc[m] = _mm256_dpbusd_epi32(acc[m], xu, wv);
      }
    }
  }
  const __m256 sv = _mm256_set1_ps(s);
  for (int m = 0; m < MR; ++m) {
    float* ym = y + (size_t)m * y_step;
    const __m256i sum = _mm256_sub_epi32(acc[m], corr);
    _mm256_storeu_ps(ym, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), sv, _mm256_loadu_ps(ym)));
  }
}

__attribute__((target(CC_Q8_ZMM_TARGET))) static void dot_q8_avx512vnni_zmm_conv(
    const int8_t* w, size_t w_tap_step, int taps, int Q, int cols, const int8_t* xq,
    size_t x_tap_step, size_t x_step, int n, float s, float* y, size_t y_step) {
#define CC_Q8_CONV_CASE(MR, W)                                                                 \
  case MR:                                                                                     \
    dot_q8_zmm_conv_tile(w, w_tap_step, taps, Q, xq, x_tap_step, x_step, MR, W, s, y, y_step); \
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
#define CC_Q8_CONV_CASE8(MR)                                                                \
  case MR:                                                                                  \
    dot_q8_ymm_conv_tile(w, w_tap_step, taps, Q, xq, x_tap_step, x_step, MR, s, y, y_step); \
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
#define CC_HAVE_VNNI_ZMM_CLONE 1
#define CC_Q8_VNNI_VEX_STEP(acc, wp) acc = _mm256_dpbusd_avx_epi32(acc, xa, CC_Q8_SIGNED_W(wp))
CC_Q8_X86_KERNEL(dot_q8_avxvnni, "avxvnni,avx2,fma", CC_Q8_VNNI_VEX_STEP)
#undef CC_Q8_VNNI_VEX_STEP
#endif
#endif
#undef CC_Q8_SIGNED_W
#undef CC_Q8_X86_QUAD
#undef CC_Q8_X86_KERNEL
#endif

#if defined(__aarch64__)
/* NEON: smull/smull2 of 4 outputs x 4 rows, pairwise adds (a pair fits int16,
 * as above) and sadalp into one int32 lane per output: 16 multiply-adds per
 * 4 instructions. With the dot-product extension, sdot does it in one. A full
 * strip keeps 8 accumulators (32 outputs). */
#define CC_Q8_NEON_KERNEL(name, STEP)                                                           \
  CC_ALWAYS_INLINE void name##_one(const int8_t* w, int Q, int cols, const int8_t* xq, float s, \
                                   float* y) {                                                  \
    const size_t ld = (size_t)cols * 4;                                                         \
    const float32x4_t sv = vdupq_n_f32(s);                                                      \
    if (cols == CC_Q8_STRIP) {                                                                  \
      int32x4_t a[8];                                                                           \
      for (int t = 0; t < 8; ++t) a[t] = vdupq_n_s32(0);                                        \
      const int8_t* wp = w;                                                                     \
      for (int q = 0; q < Q; ++q, wp += 128) {                                                  \
        int32_t word;                                                                           \
        memcpy(&word, xq + 4 * q, sizeof(word));                                                \
        const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(word));                           \
        for (int t = 0; t < 8; ++t) STEP(a[t], vld1q_s8(wp + 16 * t));                          \
      }                                                                                         \
      for (int t = 0; t < 8; ++t)                                                               \
        vst1q_f32(y + 4 * t, vfmaq_f32(vld1q_f32(y + 4 * t), vcvtq_f32_s32(a[t]), sv));         \
      return;                                                                                   \
    }                                                                                           \
    int c = 0;                                                                                  \
    for (; c + 4 <= cols; c += 4) {                                                             \
      int32x4_t a0 = vdupq_n_s32(0);                                                            \
      const int8_t* wp = w + (size_t)c * 4;                                                     \
      for (int q = 0; q < Q; ++q, wp += ld) {                                                   \
        int32_t word;                                                                           \
        memcpy(&word, xq + 4 * q, sizeof(word));                                                \
        const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(word));                           \
        STEP(a0, vld1q_s8(wp));                                                                 \
      }                                                                                         \
      vst1q_f32(y + c, vfmaq_f32(vld1q_f32(y + c), vcvtq_f32_s32(a0), sv));                     \
    }                                                                                           \
    if (c < cols) dot_q8_columns(w + (size_t)c * 4, ld, Q, cols - c, xq, s, y + c);             \
  }                                                                                             \
  CC_Q8_PIXELS(name, name##_one)
#define CC_Q8_NEON_STEP(acc, wv)                                      \
  do {                                                                \
    const int8x16_t w_ = (wv);                                        \
    const int16x8_t lo_ = vmull_s8(vget_low_s8(w_), vget_low_s8(xv)); \
    const int16x8_t hi_ = vmull_high_s8(w_, xv);                      \
    acc = vpadalq_s16(acc, vpaddq_s16(lo_, hi_));                     \
  } while (0)
CC_Q8_NEON_KERNEL(dot_q8_neon, CC_Q8_NEON_STEP)
/* The sdot kernel: GCC compiles it for the dot-product extension alone
 * (target pragma) and it is picked at run time; Clang (the Android NDK) has no
 * such pragma, so there it exists when the whole build targets the extension
 * (-march=armv8.2-a+dotprod or a CPU that has it). */
#if defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define CC_HAVE_DOTPROD_CLONE 1
#define CC_Q8_SDOT_STEP(acc, wv) acc = vdotq_s32(acc, (wv), xv)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
CC_Q8_NEON_KERNEL(dot_q8_sdot, CC_Q8_SDOT_STEP)
#pragma GCC pop_options
#undef CC_Q8_SDOT_STEP
#elif defined(__linux__) && defined(__ARM_FEATURE_DOTPROD)
#define CC_HAVE_DOTPROD_CLONE 1
#define CC_Q8_SDOT_STEP(acc, wv) acc = vdotq_s32(acc, (wv), xv)
CC_Q8_NEON_KERNEL(dot_q8_sdot, CC_Q8_SDOT_STEP)
#undef CC_Q8_SDOT_STEP
#endif
#undef CC_Q8_NEON_STEP
#undef CC_Q8_NEON_KERNEL
#endif

#if defined(__aarch64__) && defined(CC_HAVE_DOTPROD_CLONE)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

/* The int8 kernel for this CPU, chosen once; $CONDCOMP_KERNEL_ISA=baseline
 * forces the portable one (x86-64) or plain NEON (aarch64). */
static const char* g_q8_isa = NULL;
static dot_q8_group_fn g_dot_q8_group = NULL; /* set with the choice below */
static dot_q8_tiles_fn g_dot_q8_tiles = NULL;
static dot_q8_conv_fn g_dot_q8_conv = NULL;
static dot_q8_fn select_dot_q8(void) {
  static dot_q8_fn cached = NULL; /* benign race: every thread picks the same */
  dot_q8_fn known = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
  if (known) return known;
  const char* forced = getenv("CONDCOMP_KERNEL_ISA");
  const int baseline = forced && strcmp(forced, "baseline") == 0;
  (void)baseline; /* unused where there is nothing to choose */
  dot_q8_fn f = dot_q8_generic;
  const char* isa = "portable C";
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!baseline && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    f = dot_q8_avx2;
    isa = "avx2 vpmaddubsw";
#if defined(CC_HAVE_VNNI_CLONE)
    /* ...=avx2 keeps the AVX2 kernel on a VNNI CPU (CI's forced-AVX2 step). */
    const int avx2_forced = forced && strcmp(forced, "avx2") == 0;
#if defined(CC_Q8_VNNI_EMULATED)
    if (!avx2_forced) {
      f = dot_q8_avx512vnni;
      isa = "avx512-vnni vpdpbusd (SIMDe-emulated test build)";
    }
#else
    const int ymm_forced = forced && strcmp(forced, "avx512vnni-ymm") == 0;
    if (!avx2_forced && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni")) {
      f = dot_q8_avx512vnni;
      isa = "avx512-vnni vpdpbusd";
#if defined(CC_HAVE_VNNI_ZMM_CLONE)
      if (!ymm_forced && __builtin_cpu_supports("avx512bw")) {
        f = dot_q8_avx512vnni_zmm;
        g_dot_q8_group = dot_q8_avx512vnni_zmm_group;
        g_dot_q8_tiles = dot_q8_avx512vnni_zmm_tiles;
        g_dot_q8_conv = dot_q8_avx512vnni_zmm_conv;
        isa = "avx512-vnni vpdpbusd zmm";
      }
#endif
    } else if (!avx2_forced && __builtin_cpu_supports("avxvnni")) {
      f = dot_q8_avxvnni;
      isa = "avx-vnni vpdpbusd";
    }
#endif
#endif
  }
#elif defined(__aarch64__)
  f = dot_q8_neon;
  isa = "neon smull/sadalp";
#if defined(CC_HAVE_DOTPROD_CLONE)
  if (!baseline && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) {
    f = dot_q8_sdot;
    isa = "neon sdot";
  }
#endif
#endif
  g_q8_isa = isa;
  __atomic_store_n(&cached, f, __ATOMIC_RELEASE); /* after g_dot_q8_group, _tiles, _conv */
  return f;
}

size_t cc_q8_packed_size(int K, int D, int bs, int ibs) {
  if (K < 1 || D < 1 || bs < 1 || ibs < 1 || D % ibs != 0) return 0;
  return (size_t)K * (size_t)(D / ibs) * (size_t)((ibs + 3) / 4) * 4 * (size_t)bs;
}

/* Tile (j, i) is Q * 4 * bs bytes: its strips of CC_Q8_STRIP columns (the
 * last one narrower) one after another, each [Q][cols][4]. */
void cc_q8_pack(const int8_t* kernel_bm, int K, int D, int bs, int ibs, int8_t* packed) {
  const int n_in = D / ibs, Q = (ibs + 3) / 4;
  for (int j = 0; j < K; ++j) {
    for (int i = 0; i < n_in; ++i) {
      int8_t* tile = packed + ((size_t)j * n_in + i) * Q * 4 * bs;
      for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP) {
        const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
        int8_t* strip = tile + (size_t)c0 * Q * 4;
        for (int r = 0; r < Q * 4; ++r) {
          int8_t* dst = strip + (size_t)(r / 4) * cols * 4 + r % 4;
          const int8_t* src = kernel_bm + ((size_t)j * D + (size_t)i * ibs + r) * bs + c0;
          for (int c = 0; c < cols; ++c) dst[4 * c] = r < ibs ? src[c] : 0;
        }
      }
    }
  }
}

/* At most this many quads (4 rows each) per dot call: 4 * 32767 products of
 * |xq|, |w| <= 127 sum to < 2^31, so the int32 accumulators never overflow;
 * longer input blocks are summed chunk by chunk in float. */
#define CC_Q8_MAX_QUADS 32767

/* One strip (`cols` outputs, [Q][cols][4]) of a tile against the activations
 * of n pixels: y += s * (xq . w) (steps as in dot_q8_fn). */
static void dot_q8_strip(dot_q8_fn dot, const int8_t* strip, int Q, int cols, const int8_t* xq,
                         size_t x_step, float s, float* y, size_t y_step, int n) {
  for (int q0 = 0; q0 < Q; q0 += CC_Q8_MAX_QUADS) {
    const int nq = Q - q0 < CC_Q8_MAX_QUADS ? Q - q0 : CC_Q8_MAX_QUADS;
    dot(strip + (size_t)q0 * cols * 4, nq, cols, xq + (size_t)q0 * 4, x_step, s, y, y_step, n);
  }
}

/* n <= CC_Q8_GROUP examples against one strip: together through the group
 * kernel where there is one (full strips), else one by one. */
static void dot_q8_examples(dot_q8_fn dot, dot_q8_group_fn dot_group, const int8_t* strip, int Q,
                            int cols, int n, const int8_t* const* xq, const float* s,
                            float* const* y) {
  if (dot_group && cols == CC_Q8_STRIP && n > 1) {
    dot_group(strip, Q, n, xq, s, y);
    return;
  }
  for (int g = 0; g < n; ++g) dot_q8_strip(dot, strip, Q, cols, xq[g], 0, s[g], y[g], 0, 1);
}

/* y = act(y * kernel_scale + b) over one output block of bs units. */
static void finish_q8_outputs(float* y, int bs, const float* scale, const float* bias,
                              int activation) {
  if (bias) {
    for (int c = 0; c < bs; ++c) y[c] = y[c] * scale[c] + bias[c];
  } else {
    for (int c = 0; c < bs; ++c) y[c] *= scale[c];
  }
  cc_apply_activation(activation, y, (size_t)bs);
}

/* The examples[0:n_on] with output block j on, int8 weights: each needed
 * (j, i) tile read once, its examples in turn (CC_Q8_GROUP at a time through
 * the group kernel where there is one) while each strip sits in L1. */
static uint64_t dense_examples_q8(const cc_gated_dense* p, dot_q8_fn dot, const int8_t* wj,
                                  const int* examples, int n_on, int j) {
  const int K = p->num_blocks, bs = p->block_size;
  const int ibs = p->in_block_size, n_in = p->in_dim / ibs, Q = (ibs + 3) / 4;
  const size_t units = (size_t)K * bs, tile_bytes = (size_t)Q * 4 * bs;
  const dot_q8_group_fn dot_group = Q <= CC_Q8_MAX_QUADS ? g_dot_q8_group : NULL;
  uint64_t macs = 0;
  int i = next_needed_input_block(p, examples, n_on, n_in, 0);
  while (i < n_in) {
    const int next = next_needed_input_block(p, examples, n_on, n_in, i + 1);
    const int8_t* tile = wj + (size_t)i * tile_bytes;
    /* The next tile is somewhere else in memory (tiles of skipped blocks lie
     * between): prefetch it into L2 while this one is computed, one strip's
     * worth per strip, so the hardware prefetcher need not ramp up again. */
    const int8_t* ahead = next < n_in ? wj + (size_t)next * tile_bytes : NULL;
    for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP) {
      const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
      const int8_t* strip = tile + (size_t)c0 * Q * 4;
      if (ahead) {
        const char* pf = (const char*)ahead + (size_t)c0 * Q * 4;
        for (size_t off = 0; off < (size_t)cols * Q * 4; off += 64)
          __builtin_prefetch(pf + off, 0, 2);
      }
      const int8_t* xs[CC_Q8_GROUP];
      float s[CC_Q8_GROUP];
      float* ys[CC_Q8_GROUP];
      int n = 0;
      for (int a = 0; a < n_on; ++a) {
        const size_t b = (size_t)examples[a] * n_in + i;
        if (!p->in_active[b]) continue;
        xs[n] = p->xq + b * Q * 4;
        s[n] = p->xq_scale[b];
        ys[n] = p->y + (size_t)examples[a] * units + (size_t)j * bs + c0;
        if (c0 == 0) macs += (uint64_t)ibs * bs;
        if (++n == CC_Q8_GROUP) {
          dot_q8_examples(dot, dot_group, strip, Q, cols, n, xs, s, ys);
          n = 0;
        }
      }
      dot_q8_examples(dot, dot_group, strip, Q, cols, n, xs, s, ys);
    }
    i = next;
  }
  return macs;
}

/* One example e (batch 1) with output block j on, weights wj of block j,
 * outputs y: its non-zero input blocks, CC_Q8_TILES at a time, through the
 * tiles kernel strip by strip (bs a multiple of CC_Q8_STRIP). */
static uint64_t dense_example_q8_tiles(const cc_gated_dense* p, const int8_t* wj, int e, float* y) {
  const int bs = p->block_size, ibs = p->in_block_size, n_in = p->in_dim / ibs;
  const int Q = (ibs + 3) / 4;
  const size_t tile_bytes = (size_t)Q * 4 * bs;
  const uint8_t* act = p->in_active + (size_t)e * n_in;
  const int8_t* tiles[CC_Q8_TILES];
  const int8_t* xs[CC_Q8_TILES];
  float s[CC_Q8_TILES];
  uint64_t macs = 0;
  for (int i = 0; i < n_in;) {
    int n = 0;
    for (; i < n_in && n < CC_Q8_TILES; ++i) {
      if (!act[i]) continue;
      const size_t b = (size_t)e * n_in + i;
      tiles[n] = wj + (size_t)i * tile_bytes;
      xs[n] = p->xq + b * Q * 4;
      s[n] = p->xq_scale[b];
      ++n;
    }
    for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP)
      g_dot_q8_tiles(tiles, (size_t)c0 * Q * 4, Q, n, xs, s, y + c0);
    macs += (uint64_t)n * ibs * bs;
  }
  return macs;
}

/* Output block j with int8 weights: y = act((sum_i s_i * xq_i . w_i) * w_scale + b)
 * for each example with block j on, exact zeros for the others. */
static uint64_t dense_block_q8(const cc_gated_dense* p, int j, int* examples) {
  const dot_q8_fn dot = select_dot_q8();
  const int B = p->batch, K = p->num_blocks, bs = p->block_size;
  const int ibs = p->in_block_size, n_in = p->in_dim / ibs, Q = (ibs + 3) / 4;
  const size_t units = (size_t)K * bs, tile_bytes = (size_t)Q * 4 * bs;
  const float* scale = p->kernel_scale + (size_t)j * bs;
  const float* bias = p->bias ? p->bias + (size_t)j * bs : NULL;
  int n_on = 0;
  for (int e = 0; e < B; ++e) {
    float* y = p->y + (size_t)e * units + (size_t)j * bs;
    const uint8_t m = p->out_mask[(size_t)e * K + j];
    if (m == CC_ROW_NONFINITE) {
      fill_nan(y, (size_t)bs);
      continue;
    }
    memset(y, 0, sizeof(float) * bs);
    if (m) examples[n_on++] = e;
  }
  const int8_t* wj = p->kernel_q + (size_t)j * n_in * tile_bytes;
  uint64_t macs;
  if (n_on == 1 && g_dot_q8_tiles && Q <= CC_Q8_MAX_QUADS && bs % CC_Q8_STRIP == 0) {
    const int e = examples[0];
    macs = dense_example_q8_tiles(p, wj, e, p->y + (size_t)e * units + (size_t)j * bs);
  } else {
    macs = dense_examples_q8(p, dot, wj, examples, n_on, j);
  }
  for (int a = 0; a < n_on; ++a) {
    float* y = p->y + (size_t)examples[a] * units + (size_t)j * bs;
    finish_q8_outputs(y, bs, scale, bias, p->activation);
    scale_block(y, bs, p->gate_scale, (size_t)examples[a] * K + j);
  }
  return macs;
}

/* ----------------------------------------------------------------- conv2d */

int cc_conv_output_size(int in, int kernel, int stride, int dilation, int padding_same,
                        int* pad_before) {
  if (in < 0 || kernel < 1 || stride < 1 || dilation < 1) return -1;
  const long long eff = (long long)(kernel - 1) * dilation + 1;
  long long out;
  if (padding_same) {
    out = ((long long)in + stride - 1) / stride;
    long long total = (out - 1) * stride + eff - in;
    if (total < 0) total = 0;
    if (pad_before) *pad_before = (int)(total / 2);
  } else {
    out = in >= eff ? ((long long)in - eff) / stride + 1 : 0;
    if (pad_before) *pad_before = 0;
  }
  if (out > 0x7fffffff) return -1;
  return (int)out;
}

CC_ALWAYS_INLINE void conv_gate_impl(const cc_gated_conv2d* p, int e_begin, int e_end,
                                     float* scratch) {
  const int C = p->in_c, K = p->num_blocks, ibs = p->in_block_size, n_in = C / ibs;
  const size_t hw = (size_t)p->in_h * p->in_w;
  float* mean = scratch;
  float* logits = scratch + C;
  for (int e = e_begin; e < e_end; ++e) {
    const float* x = p->x + (size_t)e * hw * C;
    uint8_t* act = p->in_active + (size_t)e * n_in;
    if (!all_finite(x, hw * (size_t)C)) {
      memset(p->out_mask + (size_t)e * K, CC_ROW_NONFINITE, (size_t)K);
      memset(act, 0, (size_t)n_in);
      continue;
    }
    for (int c = 0; c < C; ++c) mean[c] = 0.0f;
    for (size_t s = 0; s < hw; ++s) {
      const float* xs = x + s * C;
      for (int c = 0; c < C; ++c) mean[c] += xs[c];
    }
    /* A channel block is skippable iff it is zero at every position. */
    memset(act, 0, (size_t)n_in);
    for (size_t s = 0; s < hw; ++s) {
      const float* xs = x + s * C;
      for (int i = 0; i < n_in; ++i) {
        if (act[i]) continue;
        for (int c = i * ibs; c < (i + 1) * ibs; ++c) {
          if (xs[c] != 0.0f) {
            act[i] = 1;
            break;
          }
        }
      }
    }
    const float inv = hw ? 1.0f / (float)hw : 0.0f;
    for (int k = 0; k < K; ++k) logits[k] = p->policy_bias[k];
    for (int c = 0; c < C; ++c) {
      const float m = mean[c] * inv;
      const float* wp = p->policy_kernel + (size_t)c * K;
      for (int k = 0; k < K; ++k) logits[k] += m * wp[k];
    }
    uint8_t* mask = p->out_mask + (size_t)e * K;
    if (p->kernel_q != NULL) quantize_conv_example(p, e);
    if (p->top_k > 0) {
      top_k_mask(logits, K, p->top_k, mask);
    } else {
      for (int k = 0; k < K; ++k) mask[k] = gate_on(logits[k], p->threshold);
    }
    if (p->gate_scale) store_gate_scale(logits, mask, K, p->gate_scale + (size_t)e * K);
  }
}

/* Example e's output block j before its products: NaN everywhere (non-finite
 * input) or zeros (block off) and returns 0, or fills it with `init` (the
 * bias, or zeros when NULL) and returns 1. */
static int conv_block_begin(const cc_gated_conv2d* p, int j, int e, const float* init) {
  const int K = p->num_blocks, bs = p->block_size;
  const size_t units = (size_t)K * bs, npix = (size_t)p->out_h * p->out_w;
  float* ye = p->y + (size_t)e * npix * units + (size_t)j * bs;
  const uint8_t m = p->out_mask[(size_t)e * K + j];
  for (size_t s = 0; s < npix; ++s) {
    float* y = ye + s * units;
    if (m == CC_ROW_NONFINITE) {
      fill_nan(y, (size_t)bs);
    } else if (m && init) {
      memcpy(y, init, sizeof(float) * bs);
    } else {
      memset(y, 0, sizeof(float) * bs);
    }
  }
  return m == 1;
}

/* The input row of output row oh under tap row kh, or -1 (padding). */
static int conv_input_row(const cc_gated_conv2d* p, int oh, int kh) {
  const int ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
  return ih >= 0 && ih < p->in_h ? ih : -1;
}

/* The input column of output column ow under tap column kw, or -1 (padding). */
static int conv_input_col(const cc_gated_conv2d* p, int ow, int kw) {
  const int iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
  return iw >= 0 && iw < p->in_w ? iw : -1;
}

/* The tap rows [kh0, kh1) of output row oh that read inside the input (one
 * run: the input row grows with kh). */
static void conv_inside_rows(const cc_gated_conv2d* p, int oh, int* kh0, int* kh1) {
  int a = 0;
  while (a < p->kernel_h && conv_input_row(p, oh, a) < 0) ++a;
  int b = a;
  while (b < p->kernel_h && conv_input_row(p, oh, b) >= 0) ++b;
  *kh0 = a;
  *kh1 = b;
}

/* The output columns [lo, hi) whose tap column kw reads inside the input
 * (one run: the input column grows with ow). */
static void conv_inside_cols(const cc_gated_conv2d* p, int kw, int* lo, int* hi) {
  int a = 0;
  while (a < p->out_w && conv_input_col(p, a, kw) < 0) ++a;
  int b = a;
  while (b < p->out_w && conv_input_col(p, b, kw) >= 0) ++b;
  *lo = a;
  *hi = b;
}

/* conv_block_float_v (VL floats per vector, for every ISA) and, on x86-64,
 * conv_block_float_w16 (16, for the AVX-512 clone): the float conv loops. */
#define CC_CV vfl
#define CC_CVW VL
#define CC_CONV_MR2 6 /* 12 accumulators: AVX2 has 16 ymm registers */
#define CC_SUF _v
#include "condcomp_conv_tile.inc"
#if CC_X86_MULTIVERSION
typedef float vf16 __attribute__((vector_size(16 * sizeof(float))));
#define CC_CV vf16
#define CC_CVW 16
#define CC_CONV_MR2 8 /* 16 accumulators of AVX-512's 32 zmm registers */
#define CC_SUF _w16
#include "condcomp_conv_tile.inc"
#endif

/* Output block j of a conv with int8 weights, per output row and tap
 * column kw (over the run of output columns reading inside the input, input
 * columns stride_w apart) and channel block i: where this CPU has a conv
 * kernel (strips of 8, 16 or 32 outputs), up to CC_Q8_CONV_PIXELS pixels at a
 * time take the int32 sums over all the row's tap rows kh in registers before
 * one float step; otherwise each (kh, kw, i) strip is one dot_q8_fn call
 * over the run, the tile staying in L1 while the pixels use it. */
static uint64_t conv_block_q8(const cc_gated_conv2d* p, int j) {
  const dot_q8_fn dot = select_dot_q8();
  const int K = p->num_blocks, bs = p->block_size, C = p->in_c;
  const int ibs = p->in_block_size, n_in = C / ibs, Q = (ibs + 3) / 4;
  const int OH = p->out_h, OW = p->out_w, KH = p->kernel_h, KW = p->kernel_w;
  const size_t units = (size_t)K * bs, tile_bytes = (size_t)Q * 4 * bs;
  const size_t hw = (size_t)p->in_h * p->in_w, pixel_bytes = (size_t)n_in * Q * 4;
  const int8_t* wj = p->kernel_q + (size_t)j * KH * KW * n_in * tile_bytes;
  /* Consecutive tap rows: the next kh's tiles and input row. */
  const size_t w_tap_step = (size_t)KW * n_in * tile_bytes;
  const size_t x_tap_step = (size_t)p->dilation_h * p->in_w * pixel_bytes;
  const size_t x_step = (size_t)p->stride_w * pixel_bytes;
  const dot_q8_conv_fn conv = (uint64_t)KH * Q <= CC_Q8_MAX_QUADS ? g_dot_q8_conv : NULL;
  uint64_t macs = 0;
  for (int e = 0; e < p->batch; ++e) {
    if (!conv_block_begin(p, j, e, NULL)) continue;
    float* ye = p->y + (size_t)e * OH * OW * units + (size_t)j * bs;
    const int8_t* xe = p->xq + (size_t)e * hw * pixel_bytes;
    const float* xs_scale = p->xq_scale + (size_t)e * n_in;
    const uint8_t* act = p->in_active + (size_t)e * n_in;
    for (int oh = 0; oh < OH; ++oh) {
      int kh0, kh1;
      conv_inside_rows(p, oh, &kh0, &kh1);
      if (kh1 == kh0) continue;
      const int ih0 = conv_input_row(p, oh, kh0);
      for (int kw = 0; kw < KW; ++kw) {
        int ow0, ow1;
        conv_inside_cols(p, kw, &ow0, &ow1);
        if (ow1 == ow0) continue;
        const int iw0 = conv_input_col(p, ow0, kw);
        for (int i = 0; i < n_in; ++i) {
          if (!act[i]) continue;
          const int8_t* tile = wj + ((size_t)(kh0 * KW + kw) * n_in + i) * tile_bytes;
          const int8_t* xq = xe + ((size_t)ih0 * p->in_w + iw0) * pixel_bytes + (size_t)i * Q * 4;
          float* y = ye + ((size_t)oh * OW + ow0) * units;
          for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP) {
            const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
            const int8_t* strip = tile + (size_t)c0 * Q * 4;
            if (conv && (cols == 8 || cols == 16 || cols == 32)) {
              /* The run in near-equal tiles of at most CC_Q8_CONV_PIXELS. */
              const int run = ow1 - ow0;
              for (int done = 0, tiles = (run + CC_Q8_CONV_PIXELS - 1) / CC_Q8_CONV_PIXELS;
                   done < run; --tiles) {
                const int n = (run - done + tiles - 1) / tiles;
                conv(strip, w_tap_step, kh1 - kh0, Q, cols, xq + (size_t)done * x_step, x_tap_step,
                     x_step, n, xs_scale[i], y + (size_t)done * units + c0, units);
                done += n;
              }
              continue;
            }
            for (int kh = kh0; kh < kh1; ++kh)
              dot_q8_strip(dot, strip + (size_t)(kh - kh0) * w_tap_step, Q, cols,
                           xq + (size_t)(kh - kh0) * x_tap_step, x_step, xs_scale[i], y + c0, units,
                           ow1 - ow0);
          }
          macs += (uint64_t)(kh1 - kh0) * (ow1 - ow0) * ibs * bs;
        }
      }
    }
    const float* bias = p->bias ? p->bias + (size_t)j * bs : NULL;
    for (size_t s = 0; s < (size_t)OH * OW; ++s) {
      finish_q8_outputs(ye + s * units, bs, p->kernel_scale + (size_t)j * bs, bias, p->activation);
      scale_block(ye + s * units, bs, p->gate_scale, (size_t)e * K + j);
    }
  }
  return macs;
}

/* ------------------------------------------------------- ISA dispatching */

static uint64_t dense_block_default(const cc_gated_dense* p, int j, int* ex) {
  return dense_block_impl(p, j, ex);
}
static uint64_t conv_block_default(const cc_gated_conv2d* p, int j) {
  return conv_block_float_v(p, j);
}

#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) static uint64_t dense_block_avx2(const cc_gated_dense* p, int j,
                                                                     int* ex) {
  return dense_block_impl(p, j, ex);
}
__attribute__((target("avx2,fma"))) static uint64_t conv_block_avx2(const cc_gated_conv2d* p,
                                                                    int j) {
  return conv_block_float_v(p, j);
}
/* Blocks of a multiple of 16 filters take zmm-wide tiles, others the 8-float
 * ones (with AVX-512's 32 registers). */
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static uint64_t conv_block_avx512(
    const cc_gated_conv2d* p, int j) {
  return p->block_size % 16 == 0 ? conv_block_float_w16(p, j) : conv_block_float_v(p, j);
}
/* AVX-512 (F + VL) clone: the same 8-float code, but with 32 vector registers
 * the 16-vector batch-1 tiles do not spill (AVX2 has 16). */
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static uint64_t dense_block_avx512(
    const cc_gated_dense* p, int j, int* ex) {
  return dense_block_impl(p, j, ex);
}

/* $CONDCOMP_KERNEL_ISA=baseline forces the baseline clone on any CPU, so the
 * tests can run every kernel path on one machine (CI does). */
static int have_avx2_fma(void) {
  static int cached = -1; /* benign race: every thread computes the same value */
  if (cached < 0) {
    const char* forced = getenv("CONDCOMP_KERNEL_ISA");
    __builtin_cpu_init();
    cached = !(forced && strcmp(forced, "baseline") == 0) && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
  }
  return cached;
}
#endif

#if CC_X86_MULTIVERSION
/* ...=avx2 forces the AVX2 clone on an AVX-512 CPU (and baseline, the baseline). */
static int have_avx512(void) {
  static int cached = -1;
  if (cached < 0) {
    const char* forced = getenv("CONDCOMP_KERNEL_ISA");
    __builtin_cpu_init();
    cached = have_avx2_fma() && !(forced && strcmp(forced, "avx2") == 0) &&
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  }
  return cached;
}
#endif

static void dense_gate_default(const cc_gated_dense* p, int b, int e, float* s) {
  dense_gate_impl(p, b, e, s);
}
static void conv_gate_default(const cc_gated_conv2d* p, int b, int e, float* s) {
  conv_gate_impl(p, b, e, s);
}
#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) static void dense_gate_avx2(const cc_gated_dense* p, int b,
                                                                int e, float* s) {
  dense_gate_impl(p, b, e, s);
}
__attribute__((target("avx2,fma"))) static void conv_gate_avx2(const cc_gated_conv2d* p, int b,
                                                               int e, float* s) {
  conv_gate_impl(p, b, e, s);
}
#endif

void cc_gated_dense_gate(const cc_gated_dense* p, int e_begin, int e_end, float* logits) {
#if CC_X86_MULTIVERSION
  if (have_avx2_fma()) {
    dense_gate_avx2(p, e_begin, e_end, logits);
    return;
  }
#endif
  dense_gate_default(p, e_begin, e_end, logits);
}

void cc_gated_conv2d_gate(const cc_gated_conv2d* p, int e_begin, int e_end, float* scratch) {
#if CC_X86_MULTIVERSION
  if (have_avx2_fma()) {
    conv_gate_avx2(p, e_begin, e_end, scratch);
    return;
  }
#endif
  conv_gate_default(p, e_begin, e_end, scratch);
}

uint64_t cc_gated_dense_block(const cc_gated_dense* p, int j, int* examples) {
  if (p->kernel_q != NULL) return dense_block_q8(p, j, examples);
#if CC_X86_MULTIVERSION
  if (have_avx512()) return dense_block_avx512(p, j, examples);
  if (have_avx2_fma()) return dense_block_avx2(p, j, examples);
#endif
  return dense_block_default(p, j, examples);
}

uint64_t cc_gated_conv2d_block(const cc_gated_conv2d* p, int j) {
  if (p->kernel_q != NULL) return conv_block_q8(p, j);
#if CC_X86_MULTIVERSION
  if (have_avx512()) return conv_block_avx512(p, j);
  if (have_avx2_fma()) return conv_block_avx2(p, j);
#endif
  return conv_block_default(p, j);
}

const char* cc_kernel_isa_q8(void) {
  select_dot_q8();
  return g_q8_isa;
}

const char* cc_kernel_isa(void) {
#if CC_X86_MULTIVERSION
  if (have_avx512()) return "x86-64 avx512 clone (dense, conv), avx2+fma (gate)";
  return have_avx2_fma() ? "x86-64 avx2+fma clone" : "x86-64 baseline clone";
#elif defined(__AVX2__) && defined(__FMA__)
  return "x86-64 avx2+fma (compile flags)";
#elif defined(__aarch64__)
  return "aarch64 neon";
#else
  return "generic";
#endif
}
