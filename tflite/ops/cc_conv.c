/* What the float and int8 conv loops share: the output geometry
 * (cc_conv_output_size, condcomp_kernels.h) and the setup of an example's
 * output block (cc_conv_block_begin, cc_kernels_internal.h).
 */
#include "cc_kernels_internal.h"

#include <string.h>

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

int cc_conv_block_begin(const cc_gated_conv2d* p, int j, int e, const float* init) {
  const int K = p->num_blocks, bs = p->block_size;
  const size_t units = (size_t)K * bs, npix = (size_t)p->out_h * p->out_w;
  float* ye = p->y + (size_t)e * npix * units + (size_t)j * bs;
  const uint8_t m = p->out_mask[(size_t)e * K + j];
  /* Stored at every pixel a vector at a time: blocks are a few vectors wide,
   * and a memset or memcpy call per pixel costs more than the stores. */
  if (m == 1 && init) {
    for (size_t s = 0; s < npix; ++s) {
      float* y = ye + s * units;
      int c = 0;
      for (; c + VL <= bs; c += VL) stv(y + c, ldv(init + c));
      for (; c < bs; ++c) y[c] = init[c];
    }
  } else {
    const float fill = m == CC_ROW_NONFINITE ? __builtin_nanf("") : 0.0f;
    const vfl fills = (vfl){0} + fill;
    for (size_t s = 0; s < npix; ++s) {
      float* y = ye + s * units;
      int c = 0;
      for (; c + VL <= bs; c += VL) stv(y + c, fills);
      for (; c < bs; ++c) y[c] = fill;
    }
  }
  return m == 1;
}
