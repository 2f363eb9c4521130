/* Stand-alone timing of the int8 conv kernel alone (cc_select_q8()->conv:
 * AVX512-VNNI zmm), no phase 1 and no finish pass, and of this core's
 * throughput of vpdpbusd and vfmadd231ps on zmm and ymm registers.
 *
 *   cc -O3 -std=gnu11 -Wno-psabi -ffp-contract=fast tflite/ops/bench_q8_conv_kernel.c \
 *      tflite/ops/cc_*.c -lpthread -lm -o /tmp/bench_q8_conv_kernel
 *   /tmp/bench_q8_conv_kernel CHANNELS IN_BLOCK FILTERS [ROW3]
 *
 * A 32x32 output, 3x3 taps all inside the input (the interior of a "same"
 * conv), one output strip of FILTERS (8, 16 or 32) outputs against one
 * input block of IN_BLOCK channels of a CHANNELS-channel input, calls of 8
 * pixels along each row as cc_conv_block_q8 makes them; ROW3 1 (default):
 * stride 1, the 3 tap columns share each broadcast; 0: stride 2. Prints
 * the median of 201 passes in GMAC/s. E.g. the 32x32x32 layer of
 * benchmarks/benchmark_conv.py: 32 32 8 (one layer), 32 8 8 (two layers).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "cc_kernels_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* This core's throughput of `op` (e.g. vpdpbusd) on register width `r`
 * ("zmm", "ymm"), ns per instruction: 12 independent ones per iteration, on
 * registers zeroed first (no denormal operand, a microcode assist each). */
#define CC_OP(op, r, n) op " %%" r "31, %%" r "30, %%" r #n "\n\t"
#define CC_ZERO(n) "vmovdqa64 %%zmm0, %%zmm" #n "\n\t"
#define CC_THROUGHPUT_NS(name, op, r)                                                              \
  __attribute__((target("avx512vnni,avx512vl,avx512f,fma"))) static double name(void) {            \
    long iterations = 20000000;                                                                    \
    const double t0 = now();                                                                       \
    __asm__ volatile(                                                                              \
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t" CC_ZERO(1) CC_ZERO(2) CC_ZERO(3) CC_ZERO(4) CC_ZERO(5) \
            CC_ZERO(6) CC_ZERO(7) CC_ZERO(8) CC_ZERO(9) CC_ZERO(10) CC_ZERO(11) CC_ZERO(30)        \
                CC_ZERO(31) "1:\n\t" CC_OP(op, r, 0) CC_OP(op, r, 1) CC_OP(op, r, 2)               \
                    CC_OP(op, r, 3) CC_OP(op, r, 4) CC_OP(op, r, 5) CC_OP(op, r, 6)                \
                        CC_OP(op, r, 7) CC_OP(op, r, 8) CC_OP(op, r, 9) CC_OP(op, r, 10)           \
                            CC_OP(op, r, 11) "dec %0\n\tjnz 1b"                                    \
        : "+r"(iterations)                                                                         \
        :                                                                                          \
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
          "xmm11", "xmm30", "xmm31", "cc");                                                        \
    return (now() - t0) / (20000000.0 * 12) * 1e9;                                                 \
  }
CC_THROUGHPUT_NS(vpdpbusd_zmm_ns, "vpdpbusd", "zmm")
CC_THROUGHPUT_NS(vpdpbusd_ymm_ns, "vpdpbusd", "ymm")
CC_THROUGHPUT_NS(vfmadd_zmm_ns, "vfmadd231ps", "zmm")
CC_THROUGHPUT_NS(vfmadd_ymm_ns, "vfmadd231ps", "ymm")
#undef CC_THROUGHPUT_NS
#undef CC_ZERO
#undef CC_OP
#endif

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s CHANNELS IN_BLOCK FILTERS [ROW3]\n", argv[0]);
    return 2;
  }
  const int C = atoi(argv[1]), ibs = atoi(argv[2]), cols = atoi(argv[3]);
  const int row3 = argc > 4 ? atoi(argv[4]) : 1;
  if (C < 1 || ibs < 1 || C % ibs || C > 4096 || (cols != 8 && cols != 16 && cols != 32)) {
    fprintf(stderr, "need CHANNELS a multiple of IN_BLOCK (<= 4096), FILTERS 8, 16 or 32\n");
    return 2;
  }
  const dot_q8_conv_fn conv = cc_select_q8()->conv;
  if (!conv) {
    fprintf(stderr, "this CPU has no int8 conv kernel (%s)\n", cc_select_q8()->isa);
    return 1;
  }
  const int n_in = C / ibs, Q = (ibs + 3) / 4, OUT = 32, stride = row3 ? 1 : 2;
  const int in_w = (OUT - 1) * stride + 3, in_h = in_w;
  const size_t tile = (size_t)Q * 4 * cols, pixel = (size_t)n_in * Q * 4;
  int8_t* w = malloc(9 * (size_t)n_in * tile);
  int32_t* sums = calloc(9 * (size_t)n_in * cols, sizeof(int32_t));
  int8_t* x = malloc(pixel * in_h * in_w);
  float* y = calloc((size_t)OUT * OUT * cols, sizeof(float));
  if (!w || !sums || !x || !y) return 1;
  for (size_t i = 0; i < 9 * (size_t)n_in * tile; ++i) w[i] = (int8_t)(rand() % 255 - 127);
  for (size_t i = 0; i < pixel * in_h * in_w; ++i) x[i] = (int8_t)(rand() % 256);
  /* Tap (a, b): tile (a * 3 + b) * n_in of the block-major layout. */
  const cc_q8_conv_taps taps = {3,
                                3,
                                3 * n_in * tile,
                                n_in * tile,
                                3 * n_in * (size_t)cols,
                                n_in * (size_t)cols,
                                pixel * in_w,
                                pixel};
  const size_t x_step = pixel * stride;
  enum { kPasses = 201 };
  double times[kPasses];
  for (int pass = 0; pass < kPasses; ++pass) {
    const double t0 = now();
    for (int oh = 0; oh < OUT; ++oh)
      for (int ow = 0; ow < OUT; ow += CC_Q8_CONV_PIXELS)
        conv(w, sums, &taps, Q, cols, x + ((size_t)oh * stride * in_w + ow * stride) * pixel,
             x_step, CC_Q8_CONV_PIXELS, 0.5f, y + ((size_t)oh * OUT + ow) * cols, cols, 1);
    times[pass] = now() - t0;
  }
  qsort(times, kPasses, sizeof(double), cmp);
  const double median = times[kPasses / 2];
  const double macs = (double)OUT * OUT * 9 * ibs * cols;
  printf(
      "int8 conv kernel (%s), %d-channel input, %d-channel block, %d filters, %s: %.1f us, "
      "%.1f GMAC/s\n",
      cc_select_q8()->isa, C, ibs, cols, row3 ? "stride 1" : "stride 2", median * 1e6,
      macs / median * 1e-9);
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  /* Interleaved, so that the four see the same state of the core. */
  const double dz = vpdpbusd_zmm_ns(), dy = vpdpbusd_ymm_ns(), fz = vfmadd_zmm_ns(),
               fy = vfmadd_ymm_ns();
  printf(
      "core peak, ns per instruction (multiply-adds each): vpdpbusd zmm %.3f (64, %.0f GMAC/s), "
      "ymm %.3f (32, %.0f); vfmadd231ps zmm %.3f (16, %.0f), ymm %.3f (8, %.0f)\n",
      dz, 64 / dz, dy, 32 / dy, fz, 16 / fz, fy, 8 / fy);
#endif
  free(w);
  free(sums);
  free(x);
  free(y);
  return 0;
}
