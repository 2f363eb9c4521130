/* The output layer folded into a gated dense op (cc_dense_head_apply): a
 * dense product over the gated layer's outputs that reads only the weight
 * rows of the blocks that are on, per ISA clone. */
#include "cc_kernels_internal.h"

/* Columns of one pass over an example's rows: up to HEAD_VECS vectors, each
 * with 4 accumulators (rows taken in turn) to break the FMA chains: 8
 * accumulators, half of AVX2's registers. */
#define HEAD_VECS 2

/* y[c .. c + nv * VL) (only the columns below H) = bias + the products of
 * the rows of the blocks that are on (every block without kernel_finite);
 * the kernel's rows are `stride` floats, padded with zeros. Zero outputs of
 * a block that is on multiply too: at the relu sparsity of trained layers
 * (about half) a branch-free pass over the block is faster than listing its
 * non-zero rows. */
CC_ALWAYS_INLINE void head_vectors(const cc_dense_head* p, const float* h, const uint8_t* mask,
                                   int c, int nv, float* y) {
  const int K = p->num_blocks, bs = p->block_size;
  const size_t stride = (size_t)p->kernel_stride;
  /* a: rows 4i, b: 4i+1, d: 4i+2, f: 4i+3; [0] and [1] the two vectors
   * (named, not an array over the sets: GCC then keeps them in registers) */
  vfl a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, d0 = {0}, d1 = {0}, f0 = {0}, f1 = {0};
  for (int j = 0; j < K; ++j) {
    if (p->kernel_finite && mask[j] != 1) continue;
    const int u1 = (j + 1) * bs;
    int u = j * bs;
    const float* w = p->kernel + (size_t)u * stride + c;
    for (; u + 4 <= u1; u += 4, w += 4 * stride) {
      a0 += h[u] * ldv(w);
      b0 += h[u + 1] * ldv(w + stride);
      d0 += h[u + 2] * ldv(w + 2 * stride);
      f0 += h[u + 3] * ldv(w + 3 * stride);
      if (nv == 2) {
        a1 += h[u] * ldv(w + VL);
        b1 += h[u + 1] * ldv(w + stride + VL);
        d1 += h[u + 2] * ldv(w + 2 * stride + VL);
        f1 += h[u + 3] * ldv(w + 3 * stride + VL);
      }
    }
    for (; u < u1; ++u, w += stride) {
      a0 += h[u] * ldv(w);
      if (nv == 2) a1 += h[u] * ldv(w + VL);
    }
  }
  float sum[2 * VL];
  stv(sum, (a0 + b0) + (d0 + f0));
  stv(sum + VL, (a1 + b1) + (d1 + f1));
  for (int i = 0; i < nv * VL && c + i < p->out_dim; ++i)
    y[c + i] = (p->bias ? p->bias[c + i] : 0.0f) + sum[i];
}

CC_ALWAYS_INLINE uint64_t head_impl(const cc_dense_head* p) {
  const int U = p->units, K = p->num_blocks, H = p->out_dim;
  uint64_t macs = 0;
  for (int e = 0; e < p->batch; ++e) {
    const float* h = p->h + (size_t)e * U;
    const uint8_t* mask = p->out_mask + (size_t)e * K;
    float* y = p->y + (size_t)e * H;
    if (mask[0] == CC_ROW_NONFINITE) { /* its gated outputs are all NaN */
      fill_nan(y, (size_t)H);
      continue;
    }
    for (int c = 0; c < H; c += HEAD_VECS * VL) {
      /* constant counts, so the accumulators stay in registers */
      if (H - c > VL) {
        head_vectors(p, h, mask, c, HEAD_VECS, y);
      } else {
        head_vectors(p, h, mask, c, 1, y);
      }
    }
    int on = 0;
    for (int j = 0; j < K; ++j) on += !p->kernel_finite || mask[j] == 1;
    macs += (uint64_t)on * p->block_size * H;
  }
  return macs;
}

/* ----------------------------------------------------------- ISA clones */

uint64_t cc_dense_head_default(const cc_dense_head* p) { return head_impl(p); }

#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) uint64_t cc_dense_head_avx2(const cc_dense_head* p) {
  return head_impl(p);
}
#endif
