/* The last step of phase 2 with int8 weights (dense and conv): each output
 * row y[0:bs] of an output block, `rows` of them `stride` floats apart (the
 * pixels of a conv), becomes act(y * kernel_scale + bias) in place, relu in
 * the same pass. Instantiated per ISA (the baseline and, on x86-64, AVX2+FMA
 * and AVX-512 clones; cc_finish_q8_outputs in cc_dispatch.c picks): a conv
 * block is thousands of values, which the SSE2 baseline took 4 at a time.
 * With FMA the multiply-add rounds once, without it twice.
 */
#include "cc_kernels_internal.h"

CC_ALWAYS_INLINE void finish_row(float* y, int bs, const float* scale, const float* bias,
                                 const int relu) {
  for (int c = 0; c < bs; ++c) {
    const float v = bias ? y[c] * scale[c] + bias[c] : y[c] * scale[c];
    y[c] = relu ? (v > 0.0f ? v : 0.0f) : v; /* relu: NaN to 0, as cc_apply_activation */
  }
}

CC_ALWAYS_INLINE void finish_rows(float* y, size_t rows, size_t stride, int bs, const float* scale,
                                  const float* bias, int activation) {
  if (activation == CC_ACT_RELU) {
    for (size_t r = 0; r < rows; ++r) finish_row(y + r * stride, bs, scale, bias, 1);
    return;
  }
  for (size_t r = 0; r < rows; ++r) finish_row(y + r * stride, bs, scale, bias, 0);
  cc_apply_activation_rows(activation, y, rows, (size_t)bs, stride);
}

void cc_finish_q8_default(float* y, size_t rows, size_t stride, int bs, const float* scale,
                          const float* bias, int activation) {
  finish_rows(y, rows, stride, bs, scale, bias, activation);
}

#if CC_X86_MULTIVERSION
__attribute__((target("avx2,fma"))) void cc_finish_q8_avx2(float* y, size_t rows, size_t stride,
                                                           int bs, const float* scale,
                                                           const float* bias, int activation) {
  finish_rows(y, rows, stride, bs, scale, bias, activation);
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) void cc_finish_q8_avx512(float* y, size_t rows,
                                                                              size_t stride, int bs,
                                                                              const float* scale,
                                                                              const float* bias,
                                                                              int activation) {
  finish_rows(y, rows, stride, bs, scale, bias, activation);
}
#endif
