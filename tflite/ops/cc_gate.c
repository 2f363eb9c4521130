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

/* --------------------------------------------------------- input checks */

/* max over n floats of their bits with the sign cleared (|v|'s bits): for
 * finite values the magnitude bits order like the values, +-Inf gives
 * 0x7f800000 and NaN more, so one integer max (which vectorizes; a float
 * sum would be a serial chain without -ffast-math) serves both max_abs and
 * all_finite. With the sign bit cleared the bits are in [0, 2^31), where a
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

/* 1 iff all n values are finite (no NaN, no +-Inf). */
CC_ALWAYS_INLINE int all_finite(const float* x, size_t n) {
  return max_magnitude_bits(x, n) < 0x7f800000u;
}

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

/* --------------------------------------------------- the policy product */

/* accumulate_group / accumulate_one (cc_f32_tile.inc): the policy product. */
#define CC_WT float
#define CC_LOADW(p) ldv(p)
#define CC_SUF
#include "cc_f32_tile.inc"

/* ----------------------------------------------------- int8 activations */

/* max |x| over n finite floats (phase 1 has checked them). */
CC_ALWAYS_INLINE float max_abs(const float* x, int n) {
  const uint32_t bits = max_magnitude_bits(x, (size_t)n);
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
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
 * per input block (cc_select_quantize: 16 values per step with AVX2 or
 * AVX-512). */
CC_ALWAYS_INLINE void quantize_example(const cc_gated_dense* p, int e) {
  const quantize_fn quantize = cc_select_quantize();
  const int ibs = p->in_block_size, n_in = p->in_dim / ibs, padded = (ibs + 3) / 4 * 4;
  const uint8_t* act = p->in_active + (size_t)e * n_in;
  for (int i = 0; i < n_in; ++i) {
    const size_t b = (size_t)e * n_in + i;
    const float* x = p->x + (size_t)e * p->in_dim + (size_t)i * ibs;
    const float m = act[i] && p->input_scale == NULL ? max_abs(x, ibs) : 0.0f;
    double k;
    p->xq_scale[b] = block_scale(p->input_scale, i, m, &k);
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

/* Phase 1 of conv examples [e_begin, e_end): one pass over the input
 * (channel_sums_and_magnitudes) gives its checks, the non-zero channel
 * blocks (non-zero at some position), the spatial mean of each channel and,
 * for per-example int8 scales, max |x| of each channel block; then the
 * policy product over the mean, each example's int8 activations (all
 * positions in one cc_select_quantize call) and mask. */
CC_ALWAYS_INLINE void conv_gate_impl(const cc_gated_conv2d* p, int e_begin, int e_end,
                                     float* scratch) {
  const int C = p->in_c, K = p->num_blocks, ibs = p->in_block_size, n_in = C / ibs;
  const size_t hw = (size_t)p->in_h * p->in_w, padded = (size_t)(ibs + 3) / 4 * 4;
  const conv_gate_scratch sc = conv_scratch(p, scratch);
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
      cc_select_quantize()(x, hw, n_in, ibs, sc.k, p->xq + (size_t)e * hw * n_in * padded);
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
  dense_gate_impl(p, b, e, logits);
}
void cc_conv_gate_default(const cc_gated_conv2d* p, int b, int e, float* scratch) {
  conv_gate_impl(p, b, e, scratch);
}
#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) void cc_dense_gate_avx2(const cc_gated_dense* p, int b, int e,
                                                            float* logits) {
  dense_gate_impl(p, b, e, logits);
}
__attribute__((target("avx2,fma"))) void cc_conv_gate_avx2(const cc_gated_conv2d* p, int b, int e,
                                                           float* scratch) {
  conv_gate_impl(p, b, e, scratch);
}
#endif
