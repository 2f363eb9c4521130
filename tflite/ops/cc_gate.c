/* Phase 1 of the gated layers (cc_gated_dense_gate, cc_gated_conv2d_gate in
 * condcomp_kernels.h), per example: the input checks (a NaN or Inf makes the
 * whole output row NaN), the non-zero input blocks (dense) or channel blocks
 * (conv, over all positions), the policy logits over the non-zero blocks
 * only, the mask (threshold or top_k rule), the gate values of
 * scale_by_gate, and with int8 weights the activations quantized per input
 * block. The bodies are always-inline and instantiated per ISA at the end
 * (the baseline and, on x86-64, an AVX2+FMA clone; cc_dispatch.c picks).
 */
#include "cc_kernels_internal.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

/* --------------------------------------------------------- input checks */

/* max over n floats of their bits with the sign cleared (|v|'s bits): for
 * finite values the magnitude bits order like the values, +-Inf gives
 * 0x7f800000 and NaN more, so one integer max (which vectorizes; a float
 * sum would be a serial chain without -ffast-math) serves both max |x| and
 * the finite check. With the sign bit cleared the bits are in [0, 2^31), where a
 * signed compare orders them as an unsigned one would: one vpmaxsd (smax
 * on NEON) per vector, where an unsigned compare costs a bias and a blend
 * before AVX-512. */
typedef int32_t vs32 __attribute__((vector_size(VL * sizeof(int32_t))));

CC_ALWAYS_INLINE vs32 max_lanes_s32(vs32 a, vs32 b) {
  const vs32 a_greater = a > b; /* all ones where a > b */
  return (a & a_greater) | (b & ~a_greater);
}

CC_ALWAYS_INLINE uint32_t max_magnitude_bits(const float* x, size_t n) {
  const vs32 magnitude = (vs32){0} + 0x7fffffff;
  vs32 m0 = (vs32){0}, m1 = (vs32){0};
  size_t r = 0;
  for (; r + 2 * VL <= n; r += 2 * VL) {
    vs32 v0, v1;
    memcpy(&v0, x + r, sizeof(v0));
    memcpy(&v1, x + r + VL, sizeof(v1));
    v0 &= magnitude;
    v1 &= magnitude;
    m0 = max_lanes_s32(v0, m0);
    m1 = max_lanes_s32(v1, m1);
  }
  m0 = max_lanes_s32(m0, m1);
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

/* ------------------------------------------------------------- the mask */

/* Policy decision: sigmoid(z) > threshold, with sigmoid correctly rounded to
 * float like the float32 reference computes it. */
CC_ALWAYS_INLINE uint8_t gate_on(float z, float threshold) {
  float sigma = (float)(1.0 / (1.0 + exp(-(double)z)));
  return sigma > threshold ? 1 : 0;
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

/* scale_by_gate, phase 1: each block's gate value, sigmoid(z) if on, else 0
 * (a NaN logit, from non-finite policy weights, scales a block that top_k
 * still had to pick to NaN). */
static void store_gate_scale(const float* z, const uint8_t* mask, int K, float* gate) {
  for (int k = 0; k < K; ++k) gate[k] = mask[k] ? 1.0f / (1.0f + expf(-z[k])) : 0.0f;
}

/* The top_k rule (keras_condcomp.reference.top_k_mask): mask = the k blocks
 * of largest logit z (= largest sigma, ranked before rounding makes saturated
 * sigmas equal), lowest index first on ties, NaN below every number.
 * topk_key gives each block one integer that orders like that rule; a pass
 * per chosen block takes the largest key not yet chosen (integer compares, no
 * NaN tests or index tie-breaks in the loop). */
CC_ALWAYS_INLINE uint64_t topk_key(float z, int b, int K) {
  /* The float's bits made monotone, -0.0 as +0.0 and NaN as 0 (below -Inf's
   * key), above the complemented index: every key distinct and non-zero.
   * Integer selects, no branches on the logit's value. */
  uint32_t bits;
  memcpy(&bits, &z, sizeof(bits));
  bits = (bits << 1) == 0 ? 0u : bits;
  const uint32_t negative = (uint32_t)-(int32_t)(bits >> 31);
  uint32_t ordered = bits ^ (negative | 0x80000000u); /* ~bits if negative */
  ordered = (bits & 0x7fffffffu) > 0x7f800000u ? 0u : ordered;
  return (uint64_t)ordered << 32 | (uint32_t)(K - b);
}

/* Up to this many blocks, top_k_mask computes the keys once, on the stack. */
#define CC_TOPK_STACK_KEYS 64

CC_ALWAYS_INLINE void top_k_mask(const float* z, int K, int k, uint8_t* mask) {
  memset(mask, 0, (size_t)K);
  if (K <= CC_TOPK_STACK_KEYS) {
    uint64_t keys[CC_TOPK_STACK_KEYS];
    for (int b = 0; b < K; ++b) keys[b] = topk_key(z[b], b, K);
    for (int r = 0; r < k && r < K; ++r) {
      uint64_t best = 0;
      for (int b = 0; b < K; ++b) best = keys[b] > best ? keys[b] : best;
      const int chosen = K - (int)(uint32_t)best;
      mask[chosen] = 1;
      keys[chosen] = 0;
    }
    return;
  }
  for (int r = 0; r < k && r < K; ++r) {
    uint64_t best = 0;
    for (int b = 0; b < K; ++b) {
      const uint64_t key = mask[b] ? 0 : topk_key(z[b], b, K);
      best = key > best ? key : best;
    }
    mask[K - (int)(uint32_t)best] = 1;
  }
}

/* --------------------------------------------------- the policy product */

/* accumulate_group / accumulate_one (cc_f32_tile.inc): the policy product. */
#define CC_WT float
#define CC_LOADW(p) ldv(p)
#define CC_SUF
#include "cc_f32_tile.inc"

/* Lane positions of the set bits of a 4-bit mask, packed to the front (the
 * other lanes are not used), and, 4 bits per mask, how many bits it has. */
typedef int32_t v4s32 __attribute__((vector_size(4 * sizeof(int32_t))));
static const v4s32 kPackedLanes[16] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0},
                                       {2, 0, 0, 0}, {0, 2, 0, 0}, {1, 2, 0, 0}, {0, 1, 2, 0},
                                       {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0},
                                       {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3}};
#define CC_LANE_COUNTS 0x4332322132212110ull

/* Bit l set iff x[l] != 0 (NaN included), l < 4. */
CC_ALWAYS_INLINE unsigned nonzero_lanes4(const float* x) {
#if defined(__SSE2__)
  return (unsigned)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x), _mm_setzero_ps()));
#else
  typedef float v4f __attribute__((vector_size(4 * sizeof(float))));
  v4f v;
  memcpy(&v, x, sizeof(v));
  const v4s32 nz = v != (v4f){0};
  return (unsigned)((nz[0] & 1) | (nz[1] & 2) | (nz[2] & 4) | (nz[3] & 8));
#endif
}

/* first + r for the rows r in [0, rows) of x (stride 1) that are not
 * exactly 0, ascending, into rows_at (room for `rows`); their count. Four
 * rows per step without a branch on the data: their indices packed by the
 * lane mask are stored at once (at rows_at + n with n <= r, so inside the
 * room) and n advances by the mask's count. The one-row-per-step loop it
 * replaces was ~40% of phase 1 on a trained MNIST condnet (perf, AVX2). */
CC_ALWAYS_INLINE int nonzero_rows(const float* x, int rows, int first, int* rows_at) {
  int n = 0, r = 0;
  for (; r + 4 <= rows; r += 4) {
    const unsigned m = nonzero_lanes4(x + r);
    const v4s32 at = kPackedLanes[m] + (first + r);
    memcpy(rows_at + n, &at, sizeof(at));
    n += (int)(CC_LANE_COUNTS >> (4 * m) & 15);
  }
  for (; r < rows; ++r) {
    rows_at[n] = first + r;
    n += x[r] != 0.0f;
  }
  return n;
}

typedef int (*nonzero_rows_fn)(const float* x, int rows, int first, int* rows_at);

#if CC_X86_MULTIVERSION
/* nonzero_rows with AVX-512: 16 rows per step (the last under a load
 * mask), their indices packed by vpcompressd (register form: the memory
 * form is slow on Zen 4) and stored under a mask of their count, at
 * rows_at + n with n <= r: inside the room. */
CC_ALWAYS_INLINE __attribute__((target("avx512f,avx512vl"))) int nonzero_rows_avx512(const float* x,
                                                                                     int rows,
                                                                                     int first,
                                                                                     int* rows_at) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int n = 0;
  for (int r = 0; r < rows; r += 16) {
    const __mmask16 in = rows - r >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (rows - r)) - 1u);
    const __mmask16 nonzero = _mm512_mask_cmp_ps_mask(in, _mm512_maskz_loadu_ps(in, x + r),
                                                      _mm512_setzero_ps(), _CMP_NEQ_UQ);
    const __m512i at =
        _mm512_maskz_compress_epi32(nonzero, _mm512_add_epi32(lanes, _mm512_set1_epi32(first + r)));
    const int count = __builtin_popcount(nonzero);
    _mm512_mask_storeu_epi32(rows_at + n, (__mmask16)((1u << count) - 1u), at);
    n += count;
  }
  return n;
}
#endif

/* ----------------------------------------------------- int8 activations */

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
 * per input block (cc_select_quantize: 16 values per step with AVX2 or
 * AVX-512). On entry xq_scale[e][i] holds max |x| of input block i, from
 * dense_gate_impl's pass over the input. */
CC_ALWAYS_INLINE void quantize_example(const cc_gated_dense* p, int e) {
  const quantize_fn quantize = cc_select_quantize();
  const int ibs = p->in_block_size, n_in = p->in_dim / ibs, padded = (ibs + 3) / 4 * 4;
  const uint8_t* act = p->in_active + (size_t)e * n_in;
  for (int i = 0; i < n_in; ++i) {
    const size_t b = (size_t)e * n_in + i;
    const float* x = p->x + (size_t)e * p->in_dim + (size_t)i * ibs;
    double k;
    p->xq_scale[b] = block_scale(p->input_scale, i, p->xq_scale[b], &k);
    if (act[i] && k > 0.0) quantize(x, 1, 1, ibs, &k, p->xq + b * padded);
  }
}

/* Channels [c, c + W * VL) of a conv example (hw positions of C channels):
 * sum[c], the sum over the positions in their order (the policy's mean), and
 * mag[c], the largest |x|'s bits (as in max_magnitude_bits: all finite iff
 * every mag[c] < 0x7f800000; a channel is all zero iff mag[c] == 0; for
 * finite values the bits of max |x|), W vectors of each in registers over
 * one pass (W constant, <= 4). */
CC_ALWAYS_INLINE void channel_vectors(const float* x, size_t hw, int C, int c, const int W,
                                      float* sum, uint32_t* mag) {
  const vs32 magnitude = (vs32){0} + 0x7fffffff;
  vfl s[4];
  vs32 m[4];
  for (int v = 0; v < W; ++v) {
    s[v] = (vfl){0};
    m[v] = (vs32){0};
  }
  for (size_t p = 0; p < hw; ++p) {
    const float* xp = x + p * C + c;
    for (int v = 0; v < W; ++v) {
      vs32 bits;
      memcpy(&bits, xp + v * VL, sizeof(bits));
      s[v] += ldv(xp + v * VL);
      m[v] = max_lanes_s32(bits & magnitude, m[v]);
    }
  }
  for (int v = 0; v < W; ++v) {
    stv(sum + c + v * VL, s[v]);
    memcpy(mag + c + v * VL, &m[v], sizeof(m[v]));
  }
}

/* sum[c] and mag[c] of channel_vectors for all C channels of a conv example:
 * 4 vectors of channels per pass, then 1, then the last channels one by one. */
CC_ALWAYS_INLINE void channel_sums_and_magnitudes(const float* x, size_t hw, int C, float* sum,
                                                  uint32_t* mag) {
  int c = 0;
  for (; c + 4 * VL <= C; c += 4 * VL) channel_vectors(x, hw, C, c, 4, sum, mag);
  for (; c + VL <= C; c += VL) channel_vectors(x, hw, C, c, 1, sum, mag);
  for (; c < C; ++c) {
    float s = 0.0f;
    uint32_t m = 0;
    for (size_t p = 0; p < hw; ++p) {
      uint32_t bits;
      memcpy(&bits, x + p * C + c, sizeof(bits));
      s += x[p * C + c];
      bits &= 0x7fffffffu;
      m = bits > m ? bits : m;
    }
    sum[c] = s;
    mag[c] = m;
  }
}

/* Phase 1 of dense examples [e_begin, e_end). Per example, one pass over
 * the input: each input block's largest |x| bits give the input check, the
 * non-zero blocks and, with int8 weights, max |x| for the scales (kept in
 * xq_scale for quantize_example). Then the policy product for windows of up
 * to CC_GATE_GROUP consecutive finite examples: each run of input blocks that
 * the same members of the window need is one pass over those policy rows for
 * all of them (accumulate_group; accumulate_one for a single member). Then
 * each example's int8 activations and mask. */
CC_ALWAYS_INLINE void dense_gate_impl(const cc_gated_dense* p, int e_begin, int e_end,
                                      float* logits, nonzero_rows_fn list_nonzero) {
  const int D = p->in_dim, K = p->num_blocks, ibs = p->in_block_size;
  const int n_in = D / ibs;
  /* The threshold rule's bounds (a log and two exps: only when it is used). */
  const gate_bounds gb =
      p->top_k > 0 ? (gate_bounds){0.0f, 0.0f, 0} : make_gate_bounds(p->threshold);
  for (int e = e_begin; e < e_end; ++e) {
    const float* x = p->x + (size_t)e * D;
    uint8_t* act = p->in_active + (size_t)e * n_in;
    float* block_max = p->kernel_q != NULL ? p->xq_scale + (size_t)e * n_in : NULL;
    uint32_t largest = 0;
    for (int i = 0; i < n_in; ++i) {
      const uint32_t m = max_magnitude_bits(x + (size_t)i * ibs, (size_t)ibs);
      largest = m > largest ? m : largest;
      act[i] = m != 0;
      if (block_max) memcpy(&block_max[i], &m, sizeof(m));
    }
    if (largest >= 0x7f800000u) { /* a NaN or +-Inf somewhere */
      memset(p->out_mask + (size_t)e * K, CC_ROW_NONFINITE, (size_t)K);
      memset(act, 0, (size_t)n_in);
      continue;
    }
    p->out_mask[(size_t)e * K] = 0;               /* not CC_ROW_NONFINITE: this row is finite */
    if (p->nonzero_at != NULL && p->batch == 1) { /* its non-zero inputs, listed once */
      int n = 0;
      for (int i = 0; i < n_in; ++i)
        if (act[i]) n += list_nonzero(x + (size_t)i * ibs, ibs, i * ibs, p->nonzero_at + 1 + n);
      p->nonzero_at[0] = n;
    }
  }
  for (int e0 = e_begin; e0 < e_end;) {
    int members[CC_GATE_GROUP];
    int G = 0, e = e0;
    for (; e < e_end && G < CC_GATE_GROUP; ++e) {
      if (p->out_mask[(size_t)e * K] != CC_ROW_NONFINITE) members[G++] = e;
    }
    e0 = e;
    float* ys[CC_GATE_GROUP];
    for (int g = 0; g < G; ++g) {
      ys[g] = logits + (size_t)g * K;
      for (int k = 0; k < K; ++k) ys[g][k] = p->policy_bias[k];
    }
    /* Batch 1 with finite policy weights: only the rows of non-zero inputs
     * (listed above); the runs below are then empty. */
    const int listed = p->policy_finite && p->nonzero_at != NULL && p->batch == 1 && G == 1;
    if (listed)
      accumulate_rows(p->policy_kernel, (size_t)K, K, p->nonzero_at + 1, p->nonzero_at[0],
                      p->x + (size_t)members[0] * D, ys[0]);
    /* need: bit g set iff member g has input block i non-zero. A run of
     * blocks with the same need is one call (its policy rows [D][K] are
     * contiguous); i == n_in closes the last run. */
    uint32_t run_need = 0;
    for (int i = listed ? n_in + 1 : 0, i0 = 0; i <= n_in; ++i) {
      uint32_t need = 0;
      for (int g = 0; i < n_in && g < G; ++g)
        need |= (uint32_t)p->in_active[(size_t)members[g] * n_in + i] << g;
      if (i > i0 && need == run_need) continue;
      if (run_need != 0) {
        const size_t d0 = (size_t)i0 * ibs;
        const int rows = (i - i0) * ibs;
        const float* w = p->policy_kernel + d0 * K;
        const float* xs[CC_GATE_GROUP];
        float* yn[CC_GATE_GROUP];
        int n = 0;
        for (int g = 0; g < G; ++g) {
          if (!(run_need >> g & 1)) continue;
          xs[n] = p->x + (size_t)members[g] * D + d0;
          yn[n++] = ys[g];
        }
        if (n == 1) {
          accumulate_one(w, (size_t)K, K, rows, xs[0], 1, yn[0]);
        } else {
          accumulate_group(n, w, (size_t)K, K, rows, xs, 1, yn);
        }
      }
      run_need = need;
      i0 = i;
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
  }
}

/* Where the conv gate's scratch keeps what (cc_gated_conv2d_gate_scratch
 * counts it): the int8 factor k of each channel block (doubles first, so
 * 8-byte aligned), the channel sums, the channel magnitudes, the logits. */
typedef struct {
  double* k;
  float* sum;
  uint32_t* mag;
  float* logits;
} conv_gate_scratch;

CC_ALWAYS_INLINE conv_gate_scratch conv_scratch(const cc_gated_conv2d* p, float* scratch) {
  const int C = p->in_c, n_in = C / p->in_block_size;
  conv_gate_scratch s;
  s.k = (double*)(void*)scratch;
  s.sum = scratch + 2 * (size_t)n_in;
  s.mag = (uint32_t*)(void*)(s.sum + C);
  s.logits = (float*)(void*)(s.mag + C);
  return s;
}

size_t cc_gated_conv2d_gate_scratch(const cc_gated_conv2d* p) {
  const size_t C = (size_t)p->in_c, n_in = C / (size_t)p->in_block_size;
  return (2 * n_in + 2 * C + (size_t)p->num_blocks + 1) / 2 * 2;
}

/* xq ^= 0x80 over n bytes (cc_conv_q8_offset_activations). */
CC_ALWAYS_INLINE void offset_activations(int8_t* xq, size_t n) {
  uint8_t* u = (uint8_t*)xq;
  for (size_t i = 0; i < n; ++i) u[i] ^= 0x80;
}

/* Phase 1 of conv examples [e_begin, e_end): one pass over the input
 * (channel_sums_and_magnitudes) gives its checks, the non-zero channel
 * blocks (non-zero at some position), the spatial mean of each channel and,
 * for per-example int8 scales, max |x| of each channel block; then the
 * policy product over the mean, each example's int8 activations (all
 * positions in one cc_select_quantize call; with their offset where the
 * conv kernel takes them, cc_conv_q8_offset_activations) and mask. */
CC_ALWAYS_INLINE void conv_gate_impl(const cc_gated_conv2d* p, int e_begin, int e_end,
                                     float* scratch) {
  const int C = p->in_c, K = p->num_blocks, ibs = p->in_block_size, n_in = C / ibs;
  const size_t hw = (size_t)p->in_h * p->in_w, padded = (size_t)(ibs + 3) / 4 * 4;
  const conv_gate_scratch sc = conv_scratch(p, scratch);
  const int offset = cc_conv_q8_offset_activations(p);
  for (int e = e_begin; e < e_end; ++e) {
    const float* x = p->x + (size_t)e * hw * C;
    uint8_t* act = p->in_active + (size_t)e * n_in;
    channel_sums_and_magnitudes(x, hw, C, sc.sum, sc.mag);
    uint32_t largest = 0;
    for (int i = 0; i < n_in; ++i) {
      uint32_t m = 0;
      for (int c = i * ibs; c < (i + 1) * ibs; ++c) m = sc.mag[c] > m ? sc.mag[c] : m;
      sc.mag[i] = m; /* block i's max |x| bits (channel i's is no longer needed) */
      largest = m > largest ? m : largest;
    }
    if (largest >= 0x7f800000u) { /* a NaN or +-Inf somewhere */
      memset(p->out_mask + (size_t)e * K, CC_ROW_NONFINITE, (size_t)K);
      memset(act, 0, (size_t)n_in);
      continue;
    }
    for (int i = 0; i < n_in; ++i) act[i] = sc.mag[i] != 0;
    const float inv = hw ? 1.0f / (float)hw : 0.0f;
    float* logits = sc.logits;
    for (int k = 0; k < K; ++k) logits[k] = p->policy_bias[k];
    for (int c = 0; c < C; ++c) {
      const float m = sc.sum[c] * inv;
      const float* wp = p->policy_kernel + (size_t)c * K;
      for (int k = 0; k < K; ++k) logits[k] += m * wp[k];
    }
    if (p->kernel_q != NULL) {
      for (int i = 0; i < n_in; ++i) {
        float m = 0.0f;
        if (act[i] && p->input_scale == NULL) memcpy(&m, &sc.mag[i], sizeof(m));
        p->xq_scale[(size_t)e * n_in + i] = block_scale(p->input_scale, i, m, &sc.k[i]);
        if (!act[i]) sc.k[i] = 0.0; /* an all-zero block is never read */
      }
      int8_t* xq = p->xq + (size_t)e * hw * n_in * padded;
      cc_select_quantize()(x, hw, n_in, ibs, sc.k, xq);
      if (offset) offset_activations(xq, hw * (size_t)n_in * padded);
    }
    uint8_t* mask = p->out_mask + (size_t)e * K;
    if (p->top_k > 0) {
      top_k_mask(logits, K, p->top_k, mask);
    } else {
      for (int k = 0; k < K; ++k) mask[k] = gate_on(logits[k], p->threshold);
    }
    if (p->gate_scale) store_gate_scale(logits, mask, K, p->gate_scale + (size_t)e * K);
  }
}

/* ----------------------------------------------------------- ISA clones */

void cc_dense_gate_default(const cc_gated_dense* p, int b, int e, float* logits) {
  dense_gate_impl(p, b, e, logits, nonzero_rows);
}
void cc_conv_gate_default(const cc_gated_conv2d* p, int b, int e, float* scratch) {
  conv_gate_impl(p, b, e, scratch);
}
#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) void cc_dense_gate_avx2(const cc_gated_dense* p, int b, int e,
                                                            float* logits) {
  dense_gate_impl(p, b, e, logits, nonzero_rows);
}
/* The AVX2 clone's code but for the list of non-zero inputs at batch 1. */
__attribute__((target("avx512f,avx512vl,avx2,fma"))) void cc_dense_gate_avx512(
    const cc_gated_dense* p, int b, int e, float* logits) {
  dense_gate_impl(p, b, e, logits, nonzero_rows_avx512);
}
__attribute__((target("avx2,fma"))) void cc_conv_gate_avx2(const cc_gated_conv2d* p, int b, int e,
                                                           float* scratch) {
  conv_gate_impl(p, b, e, scratch);
}
#endif
