/* Phase 2 of a gated dense layer with int8 weights (cc_gated_dense_block with
 * kernel_q): output block j of every example with it on, the weight tiles
 * read in the same order as the float loops (cc_dense_f32.c), through the
 * int8 dot kernels this CPU runs (cc_select_q8): with AVX512-VNNI, up to 4
 * examples share each weight load of a tile (cc_dot_q8_avx512vnni_zmm_group);
 * on every x86-64 kernel, one example alone runs all its input blocks' tiles
 * in one call with the outputs in registers (the tiles kernels).
 */
#include "cc_kernels_internal.h"

#include <string.h>

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

/* n <= CC_Q8_GROUP examples against one strip: together through the group
 * kernel where there is one (full strips), else one by one. */
static void dot_q8_examples(dot_q8_fn dot, dot_q8_group_fn dot_group, const int8_t* strip,
                            const int32_t* sums, int Q, int cols, int n, const int8_t* const* xq,
                            const float* s, float* const* y) {
  if (dot_group && cols == CC_Q8_STRIP && n > 1) {
    dot_group(strip, sums, Q, n, xq, s, y);
    return;
  }
  for (int g = 0; g < n; ++g) dot_q8_strip(dot, strip, Q, cols, xq[g], 0, s[g], y[g], 0, 1);
}

/* The examples[0:n_on] with output block j on, int8 weights: each needed
 * (j, i) tile read once, its examples in turn (CC_Q8_GROUP at a time through
 * the group kernel where there is one) while each strip sits in L1. No
 * software prefetch of the next needed tile: measured slower on AMD Zen 4
 * than the hardware prefetchers alone. */
static uint64_t dense_examples_q8(const cc_gated_dense* p, const cc_q8_kernels* q8,
                                  const int8_t* wj, const int32_t* sums_j, const int* examples,
                                  int n_on, int j) {
  const dot_q8_fn dot = q8->dot;
  const int K = p->num_blocks, bs = p->block_size;
  const int ibs = p->in_block_size, n_in = p->in_dim / ibs, Q = (ibs + 3) / 4;
  const size_t units = (size_t)K * bs, tile_bytes = (size_t)Q * 4 * bs;
  const dot_q8_group_fn dot_group = Q <= CC_Q8_MAX_QUADS ? q8->group : NULL;
  uint64_t macs = 0;
  for (int i = next_needed_input_block(p, examples, n_on, n_in, 0); i < n_in;
       i = next_needed_input_block(p, examples, n_on, n_in, i + 1)) {
    const int8_t* tile = wj + (size_t)i * tile_bytes;
    for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP) {
      const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
      const int8_t* strip = tile + (size_t)c0 * Q * 4;
      const int32_t* sums = sums_j + (size_t)i * bs + c0;
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
          dot_q8_examples(dot, dot_group, strip, sums, Q, cols, n, xs, s, ys);
          n = 0;
        }
      }
      dot_q8_examples(dot, dot_group, strip, sums, Q, cols, n, xs, s, ys);
    }
  }
  return macs;
}

/* One example e (batch 1) with output block j on, weights wj of block j,
 * outputs y: its non-zero input blocks, CC_Q8_TILES at a time, through the
 * tiles kernel `dot_tiles` strip by strip (bs a multiple of CC_Q8_STRIP). */
static uint64_t dense_example_q8_tiles(const cc_gated_dense* p, dot_q8_tiles_fn dot_tiles,
                                       const int8_t* wj, int e, float* y) {
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
      dot_tiles(tiles, (size_t)c0 * Q * 4, Q, n, xs, s, y + c0);
    macs += (uint64_t)n * ibs * bs;
  }
  return macs;
}

/* Whether the examples[0:n] with output block j on go through each needed
 * (j, i) weight tile together (dense_examples_q8: each weight load shared by
 * up to CC_Q8_GROUP examples), or one at a time through the tiles kernel,
 * which reads the weights of non-zero activation quads only. Together where
 * the tiles have on average at least CC_Q8_SHARED_TILE examples each and
 * more than 7/8 of the quads are non-zero (estimated from examples[0]'s
 * input blocks) or the strips are too short for the zero-quad skip
 * (CC_Q8_MASKED_QUADS). Measured on an Ice Lake Xeon (VNNI zmm), batch 32: the
 * MNIST condnet's first layer (one block of 784 pixels, about 8 examples
 * per tile, 64-84% zero quads) and its second (64-input blocks of relu
 * outputs, 2-4 examples per tile, 17-30% zero quads) are faster one example
 * at a time (the int8 model 0.88-0.96x the time), while the 784-2048x3
 * stack (128-input blocks of relu outputs of random weights) is faster
 * together at tau 0.35-0.75 (4-18 examples per tile; one at a time took
 * 1.1-1.2x the time at 0.35, 1.4-1.8x at 0.5-0.75). */
#ifndef CC_Q8_SHARED_TILE
#define CC_Q8_SHARED_TILE 3
#endif
CC_ALWAYS_INLINE int tiles_shared(const cc_gated_dense* p, const int* examples, int n, int n_in,
                                  int Q) {
  int pairs = 0, tiles = 0;
  for (int i = 0; i < n_in; ++i) {
    int m = 0;
    for (int a = 0; a < n; ++a) m += p->in_active[(size_t)examples[a] * n_in + i] != 0;
    pairs += m;
    tiles += m != 0;
  }
  if (pairs < CC_Q8_SHARED_TILE * tiles) return 0;
  if (Q < CC_Q8_MASKED_QUADS) return 1;
  const size_t b0 = (size_t)examples[0] * n_in;
  int nonzero = 0, all = 0;
  for (int i = 0; i < n_in; ++i) {
    if (!p->in_active[b0 + i]) continue;
    const int8_t* xq = p->xq + (b0 + i) * Q * 4;
    for (int q = 0; q < Q; ++q) {
      uint32_t word;
      memcpy(&word, xq + 4 * q, sizeof(word));
      nonzero += word != 0;
    }
    all += Q;
  }
  return 8 * nonzero > 7 * all;
}

/* Output block j with int8 weights: y = act((sum_i s_i * xq_i . w_i) * w_scale + b)
 * for each example with block j on, exact zeros for the others. */
uint64_t cc_dense_block_q8(const cc_gated_dense* p, int j, int* examples) {
  const cc_q8_kernels* q8 = cc_select_q8();
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
  if (n_on == 0) return 0;
  const int8_t* wj = p->kernel_q + (size_t)j * n_in * tile_bytes;
  uint64_t macs = 0;
  if (q8->tiles && Q <= CC_Q8_MAX_QUADS && bs % CC_Q8_STRIP == 0 &&
      (n_on == 1 || !tiles_shared(p, examples, n_on, n_in, Q))) {
    for (int a = 0; a < n_on; ++a) {
      const int e = examples[a];
      macs +=
          dense_example_q8_tiles(p, q8->tiles, wj, e, p->y + (size_t)e * units + (size_t)j * bs);
    }
  } else {
    const int32_t* sums_j =
        cc_q8_offset_sums(p->kernel_q, (size_t)K * n_in, tile_bytes) + (size_t)j * n_in * bs;
    macs = dense_examples_q8(p, q8, wj, sums_j, examples, n_on, j);
  }
  for (int a = 0; a < n_on; ++a) {
    float* y = p->y + (size_t)examples[a] * units + (size_t)j * bs;
    cc_finish_q8_outputs(y, 1, 0, bs, scale, bias, p->activation);
    scale_block(y, bs, p->gate_scale, (size_t)examples[a] * K + j);
  }
  return macs;
}
