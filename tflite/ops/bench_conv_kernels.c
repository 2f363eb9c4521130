/* Stand-alone timing of the CondComp conv kernel, float32 vs int8 (no TFLite).
 *
 *   cc -O3 -std=gnu11 -Wno-psabi -ffp-contract=fast tflite/ops/bench_conv_kernels.c \
 *      tflite/ops/cc_*.c -lpthread -lm -o /tmp/bench_conv_kernels
 *   /tmp/bench_conv_kernels H W C FILTERS K ON IN_BLOCKS IN_ON [runs]
 *
 * One 3x3 "same" GatedConv2D, batch 1, one thread: C input channels in
 * IN_BLOCKS channel blocks of which the first IN_ON are non-zero (as after a
 * gated layer), FILTERS outputs in K blocks of which ON are on. Prints the
 * median time of gate + blocks with float weights and with int8 weights
 * (cc_q8_pack) and activations, interleaved. E.g. the CIFAR convnet's conv_4:
 * 16 16 64 64 4 2 4 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "condcomp_kernels.h"

static void* must(void* p) {
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

int main(int argc, char** argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: %s H W C FILTERS K ON IN_BLOCKS IN_ON [runs]\n", argv[0]);
    return 2;
  }
  const int H = atoi(argv[1]), W = atoi(argv[2]), C = atoi(argv[3]), F = atoi(argv[4]);
  const int K = atoi(argv[5]), on = atoi(argv[6]), n_in = atoi(argv[7]), in_on = atoi(argv[8]);
  const int runs = argc > 9 ? atoi(argv[9]) : 301;
  if (H < 1 || W < 1 || C < 1 || K < 1 || F % K || n_in < 1 || C % n_in || on > K || in_on > n_in ||
      runs < 1 || n_in > 4096 || K > 4096) {
    fprintf(stderr, "invalid sizes\n");
    return 2;
  }
  const int bs = F / K, ibs = C / n_in, KS = 3, rows = KS * KS * C;
  const size_t nk = (size_t)K * rows * bs;
  float* x = must(calloc((size_t)H * W * C, sizeof(float)));
  for (int s = 0; s < H * W; ++s)
    for (int c = 0; c < in_on * ibs; ++c)
      x[(size_t)s * C + c] = (float)((s * 7 + c * 3) % 13 - 6) / 7.0f;
  float* policy_kernel = must(calloc((size_t)C * K, sizeof(float)));
  float* policy_bias = must(calloc((size_t)K, sizeof(float)));
  for (int k = 0; k < K; ++k) policy_bias[k] = k < on ? 5.0f : -5.0f; /* the first ON blocks on */
  float* bias = must(calloc((size_t)F, sizeof(float)));
  float* y = must(calloc((size_t)H * W * F, sizeof(float)));
  float* kernel_scale = must(malloc(sizeof(float) * F));
  for (int u = 0; u < F; ++u) kernel_scale[u] = 1e-3f;
  int8_t* kernel_q = must(malloc(nk));
  float* kernel_f = must(malloc(sizeof(float) * nk));
  for (size_t i = 0; i < nk; ++i) {
    kernel_q[i] = (int8_t)((int)(i * 31 % 255) - 127);
    kernel_f[i] = kernel_q[i] * 1e-3f;
  }
  int8_t* packed = must(malloc(cc_q8_packed_size(K, rows, bs, ibs)));
  cc_q8_pack(kernel_q, K, rows, bs, ibs, packed);
  uint8_t* in_active = must(malloc((size_t)n_in));
  uint8_t* out_mask = must(malloc((size_t)K));
  int8_t* xq = must(malloc((size_t)H * W * n_in * ((ibs + 3) / 4 * 4)));
  float* xq_scale = must(malloc(sizeof(float) * n_in));

  cc_gated_conv2d p;
  memset(&p, 0, sizeof(p));
  p.batch = 1;
  p.in_h = p.out_h = H;
  p.in_w = p.out_w = W;
  p.in_c = C;
  p.kernel_h = p.kernel_w = KS;
  p.stride_h = p.stride_w = p.dilation_h = p.dilation_w = 1;
  p.pad_top = p.pad_left = 1;
  p.num_blocks = K;
  p.block_size = bs;
  p.in_block_size = ibs;
  p.activation = CC_ACT_RELU;
  p.threshold = 0.5f;
  p.x = x;
  p.bias = bias;
  p.policy_kernel = policy_kernel;
  p.policy_bias = policy_bias;
  p.y = y;
  p.in_active = in_active;
  p.out_mask = out_mask;
  float* scratch = must(malloc(sizeof(float) * cc_gated_conv2d_gate_scratch(&p)));
  cc_gated_conv2d pf = p;
  pf.kernel_bm = kernel_f;
  cc_gated_conv2d pq = p;
  pq.kernel_q = packed;
  pq.kernel_scale = kernel_scale;
  pq.xq = xq;
  pq.xq_scale = xq_scale;

  double* tf = must(malloc(sizeof(double) * runs));
  double* tq = must(malloc(sizeof(double) * runs));
  for (int r = 0; r < runs; ++r) {
    const double t0 = now();
    cc_gated_conv2d_gate(&pf, 0, 1, scratch);
    for (int j = 0; j < K; ++j) cc_gated_conv2d_block(&pf, j);
    const double t1 = now();
    cc_gated_conv2d_gate(&pq, 0, 1, scratch);
    for (int j = 0; j < K; ++j) cc_gated_conv2d_block(&pq, j);
    const double t2 = now();
    tf[r] = t1 - t0;
    tq[r] = t2 - t1;
  }
  qsort(tf, runs, sizeof(double), cmp);
  qsort(tq, runs, sizeof(double), cmp);
  printf(
      "conv %dx%dx%d -> %d (3x3 same, %d of %d blocks on, %d of %d input blocks non-zero), "
      "%s / int8 %s: float32 %.1f us, int8 %.1f us (%.2fx)\n",
      H, W, C, F, on, K, in_on, n_in, cc_kernel_isa(), cc_kernel_isa_q8(), tf[runs / 2] * 1e6,
      tq[runs / 2] * 1e6, tf[runs / 2] / tq[runs / 2]);
  return 0;
}
