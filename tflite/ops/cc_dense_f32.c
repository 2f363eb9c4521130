/* Phase 2 of a gated dense layer with float weights (cc_gated_dense_block):
 * output block j of every example with it on.
 *
 * Work of one output block j: for each non-zero input block i that some
 * example with block j on needs, the [in_block_size][bs] weight tile of (j, i)
 * is contiguous (block-major layout) and is read once, in memory order:
 *  - batch 1 / one example (accumulate_one): a register tile of up to 16
 *    vectors (128 floats on x86-64, 64 on aarch64) accumulates the whole tile
 *    row by row, so the tile streams sequentially and only the weights touch
 *    memory. Runs of consecutive non-zero input blocks are one call (their
 *    rows are contiguous), and narrow blocks (bs < 64) split the rows over R
 *    independent accumulator sets so the FMA chains are not latency bound
 *    (bs 32 went from ~3 to ~9-14 GMAC/s on Zen 3). At batch 1 with finite
 *    weights, only the rows of the inputs that are not exactly 0 (listed by
 *    phase 1: cc_gated_dense.nonzero_at) are read (accumulate_rows): a zero
 *    pixel or a zero relu output adds an exact 0;
 *  - several examples (accumulate_group): register tiles
 *    of 4 examples x 2 vectors of columns over all rows of the tile, so 4
 *    examples share each weight load and the accumulators stay in
 *    registers.
 * Batch-1 inference is memory-bound (about 1 flop per weight byte), so the
 * point is to read only the active tiles, each sequentially.
 *
 * The loops are instantiated per ISA at the end: the baseline and, on
 * x86-64, AVX2+FMA and AVX-512 clones (cc_dispatch.c picks).
 */
#include "cc_kernels_internal.h"

#include <string.h>

/* Examples sharing one pass over a weight tile. */
#ifndef CC_GROUP
#define CC_GROUP 8
#endif

/* accumulate_group / accumulate_one: the float weight-tile loops. */
#define CC_WT float
#define CC_LOADW(p) ldv(p)
#define CC_SUF
#include "cc_f32_tile.inc"

/* Output block j with float weights (int8 weights: cc_dense_block_q8). */
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
    if (p->kernel_finite && p->nonzero_at != NULL && p->batch == 1) {
      /* finite weights: only the rows of the non-zero inputs phase 1 listed */
      accumulate_rows(wj, (size_t)bs, bs, p->nonzero_at + 1, p->nonzero_at[0], x, y);
      for (; i < n_in; ++i) macs += act[i] ? (uint64_t)ibs * bs : 0;
    }
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

/* ----------------------------------------------------------- ISA clones */

uint64_t cc_dense_block_f32_default(const cc_gated_dense* p, int j, int* examples) {
  return dense_block_impl(p, j, examples);
}

#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) uint64_t cc_dense_block_f32_avx2(const cc_gated_dense* p, int j,
                                                                     int* examples) {
  return dense_block_impl(p, j, examples);
}
/* AVX-512 (F + VL) clone: the same 8-float code, but with 32 vector registers
 * the 16-vector batch-1 tiles do not spill (AVX2 has 16). */
__attribute__((target("avx512f,avx512vl,avx2,fma"))) uint64_t
cc_dense_block_f32_avx512(const cc_gated_dense* p, int j, int* examples) {
  return dense_block_impl(p, j, examples);
}
#endif
