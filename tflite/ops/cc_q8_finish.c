/* The last step of phase 2 with int8 weights (dense and conv): each output
 * row y[0:bs] of an output block, `rows` of them `stride` floats apart (the
 * pixels of a conv), becomes act(y * kernel_scale + bias) in place, relu in
 * the same pass. Instantiated per ISA (the baseline and, on x86-64, AVX2+FMA
 * and AVX-512 clones; cc_finish_q8_outputs in cc_dispatch.c picks): a conv
 * block is thousands of values, which the SSE2 baseline took 4 at a time.
 * With FMA the multiply-add rounds once, without it twice.
 */
#include "cc_kernels_internal.h"

typedef int32_t vsi __attribute__((vector_size(VL * sizeof(int32_t))));

/* relu: v where v > 0, else +0 (NaN too, as cc_apply_activation). */
CC_ALWAYS_INLINE float relu1(float v) { return v > 0.0f ? v : 0.0f; }
CC_ALWAYS_INLINE vfl relu_v(vfl v) { return (vfl)((vsi)(v > 0.0f) & (vsi)v); }

/* A vector at a time, then one value at a time. Bias or not is decided
 * per call (BIAS constant), not per row: with both cases in one loop GCC
 * hoists their common product and leaves it unfused with the bias add. */
CC_ALWAYS_INLINE void finish_row(float* y, const int bs, const float* scale, const float* bias,
                                 const int BIAS, const int RELU) {
  int c = 0;
  for (; c + VL <= bs; c += VL) {
    const vfl v = BIAS ? ldv(y + c) * ldv(scale + c) + ldv(bias + c) : ldv(y + c) * ldv(scale + c);
    stv(y + c, RELU ? relu_v(v) : v);
  }
  for (; c < bs; ++c) {
    const float v = BIAS ? y[c] * scale[c] + bias[c] : y[c] * scale[c];
    y[c] = RELU ? relu1(v) : v;
  }
}

CC_ALWAYS_INLINE void finish_rows_bs(float* y, size_t rows, size_t stride, const int bs,
                                     const float* scale, const float* bias, int activation) {
  if (activation == CC_ACT_RELU) {
    if (bias)
      for (size_t r = 0; r < rows; ++r) finish_row(y + r * stride, bs, scale, bias, 1, 1);
    else
      for (size_t r = 0; r < rows; ++r) finish_row(y + r * stride, bs, scale, bias, 0, 1);
    return;
  }
  if (bias)
    for (size_t r = 0; r < rows; ++r) finish_row(y + r * stride, bs, scale, bias, 1, 0);
  else
    for (size_t r = 0; r < rows; ++r) finish_row(y + r * stride, bs, scale, bias, 0, 0);
  cc_apply_activation_rows(activation, y, rows, (size_t)bs, stride);
}

/* The common block sizes with bs a constant: a conv block's row (a pixel)
 * is then a vector or a few, not a loop with its prologue and remainder. */
CC_ALWAYS_INLINE void finish_rows(float* y, size_t rows, size_t stride, int bs, const float* scale,
                                  const float* bias, int activation) {
  switch (bs) {
    case 8:
      finish_rows_bs(y, rows, stride, 8, scale, bias, activation);
      return;
    case 16:
      finish_rows_bs(y, rows, stride, 16, scale, bias, activation);
      return;
    case 32:
      finish_rows_bs(y, rows, stride, 32, scale, bias, activation);
      return;
    default:
      finish_rows_bs(y, rows, stride, bs, scale, bias, activation);
  }
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
