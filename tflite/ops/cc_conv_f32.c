/* Phase 2 of a gated conv with float weights (cc_gated_conv2d_block): output
 * block j of every example with it on, a GEMM over the example's non-zero
 * channel blocks with the im2col implicit (cc_conv_f32_tile.inc): register
 * tiles of up to 8 output pixels x 1-2 vectors of the block's filters
 * accumulate every tap and channel, so each weight vector loaded serves 8
 * pixels. Blocks one vector wide go two at a time (an example's on blocks
 * in pairs): with one vector of filters per tile, the input broadcasts (one
 * per multiply-add) were the bound, 29 GMAC/s against XNNPACK's 45 on AVX2
 * (8-filter blocks of a 32x32x32 conv); two vectors per broadcast took the
 * layer from 0.155 to 0.120 ms.
 *
 * The loops are instantiated per ISA at the end: the baseline and, on
 * x86-64, AVX2+FMA and AVX-512 clones (cc_dispatch.c picks).
 */
#include "cc_kernels_internal.h"

#include <string.h>

/* conv_block_float_v (VL floats per vector, for every ISA) and, on x86-64,
 * conv_block_float_w16 (16, for the AVX-512 clone): the float conv loops. */
#define CC_CV vfl
#define CC_CVW VL
#define CC_CONV_MR2 6 /* 12 accumulators: AVX2 has 16 ymm registers */
#define CC_SUF _v
#include "cc_conv_f32_tile.inc"
#if CC_X86_MULTIVERSION
typedef float vf16 __attribute__((vector_size(16 * sizeof(float))));
#define CC_CV vf16
#define CC_CVW 16
#define CC_CONV_MR2 8 /* 16 accumulators of AVX-512's 32 zmm registers */
#define CC_SUF _w16
#include "cc_conv_f32_tile.inc"
#endif

/* ----------------------------------------------------------- ISA clones */

uint64_t cc_conv_block_f32_default(const cc_gated_conv2d* p, int j) {
  return conv_block_float_v(p, j);
}

#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) uint64_t cc_conv_block_f32_avx2(const cc_gated_conv2d* p,
                                                                    int j) {
  return conv_block_float_v(p, j);
}
/* Blocks of a multiple of 16 filters take zmm-wide tiles, others the 8-float
 * ones (with AVX-512's 32 registers). */
__attribute__((target("avx512f,avx512vl,avx2,fma"))) uint64_t
cc_conv_block_f32_avx512(const cc_gated_conv2d* p, int j) {
  return p->block_size % 16 == 0 ? conv_block_float_w16(p, j) : conv_block_float_v(p, j);
}
#endif
