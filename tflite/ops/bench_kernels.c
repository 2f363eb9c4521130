/* Stand-alone timing of the CondComp dense kernel (no TFLite), for kernel work.
 *
 *   cc -O3 -std=gnu11 -Wno-psabi -ffp-contract=fast tflite/ops/bench_kernels.c \
 *      tflite/ops/cc_*.c -lpthread -lm -o /tmp/bench_kernels &&
 *   /tmp/bench_kernels [batch] [tau] [flush 0/1] [runs] [int8 0/1]
 *
 * The flags after -O3 are the `cflags` of build.txt; tflite/ops/cc_*.c are
 * the kernels (and the thread pool, cc_parallel.c, unused here).
 * tflite/check_cpu_kernels.sh builds this program with build.txt's
 * `cflags` and `sources`.
 *
 * Runs a 784-2048-2048-2048 stack of gated dense layers (16 blocks of 128)
 * whose masks are random with P(on) = tau, optionally streaming a 64 MiB buffer
 * between runs (what an interleaved dense model does to the caches), and prints
 * the median time, the effective weight bandwidth and the median time of
 * phase 1 (the policy, and with int8 the activations' quantization: the
 * difference between int8 0 and 1 is what quantizing costs). int8 1:
 * dynamic-range int8 weights (packed by cc_q8_pack) and activations.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "condcomp_kernels.h"

static float frand(unsigned* s) {
  *s = *s * 1664525u + 1013904223u;
  return ((*s >> 8) / 16777216.0f) - 0.5f;
}

int main(int argc, char** argv) {
  const int B = argc > 1 ? atoi(argv[1]) : 1;
  const float tau = argc > 2 ? (float)atof(argv[2]) : 0.25f;
  const int flush = argc > 3 ? atoi(argv[3]) : 1;
  const int runs = argc > 4 ? atoi(argv[4]) : 200;
  const int int8 = argc > 5 ? atoi(argv[5]) : 0;
  enum { L = 3, K = 16, BS = 128, H = K * BS };
  const int dims[L + 1] = {784, H, H, H};
  unsigned seed = 1;
  float* w[L];
  float* wp[L];
  float* bp[L];
  float* act[L + 1];
  int8_t* wq[L];
  float* wscale = malloc(H * sizeof(float));
  for (int c = 0; c < H; ++c) wscale[c] = 0.05f / 127;
  int8_t* xq = malloc((size_t)B * H);
  float* xq_scale = malloc((size_t)B * H * sizeof(float));
  for (int l = 0; l < L; ++l) {
    size_t n = (size_t)dims[l] * H;
    w[l] = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; ++i) w[l][i] = frand(&seed) * 0.05f;
    int8_t* q = malloc(n);
    for (size_t i = 0; i < n; ++i) q[i] = (int8_t)(w[l][i] * 127 / 0.025f);
    const int ibs = l == 0 ? dims[l] : BS;
    wq[l] = malloc(cc_q8_packed_size(K, dims[l], BS, ibs));
    cc_q8_pack(q, K, dims[l], BS, ibs, wq[l]);
    free(q);
    wp[l] = calloc((size_t)dims[l] * K, sizeof(float)); /* zero policy kernel */
    bp[l] = malloc(K * sizeof(float));
  }
  for (int l = 0; l <= L; ++l) act[l] = malloc((size_t)B * dims[l] * sizeof(float));
  for (int i = 0; i < B * dims[0]; ++i) act[0][i] = frand(&seed);
  uint8_t* in_active = malloc((size_t)B * 784);
  uint8_t* out_mask = malloc((size_t)B * K);
  int* ex = malloc(sizeof(int) * 2 * B);
  float logits[CC_GATE_GROUP * K];
  size_t flush_n = (64u << 20) / sizeof(float);
  float* junk = malloc(flush_n * sizeof(float));
  for (size_t i = 0; i < flush_n; ++i) junk[i] = (float)i;
  double* t = malloc(sizeof(double) * runs);
  double* t_gate = malloc(sizeof(double) * runs); /* phase 1 (policy; int8: + activations) */
  double macs_total = 0, bytes_total = 0;
  volatile float sink = 0;
  for (int r = 0; r < runs; ++r) {
    if (flush) {
      float s = 0;
      for (size_t i = 0; i < flush_n; i += 16) s += junk[i];
      sink += s;
    }
    double t0 = now(), gate = 0;
    uint64_t macs = 0;
    for (int l = 0; l < L; ++l) {
      /* random per-example masks: the policy is zero, so set the mask directly */
      cc_gated_dense p = {B,     dims[l], K,          BS,        l == 0 ? dims[l] : BS,
                          1,     0.5f,    act[l],     w[l],      NULL,
                          wp[l], bp[l],   act[l + 1], in_active, out_mask};
      if (int8) {
        p.kernel_q = wq[l];
        p.kernel_scale = wscale;
        p.xq = xq;
        p.xq_scale = xq_scale;
      }
      const double g0 = now();
      cc_gated_dense_gate(&p, 0, B, logits);
      gate += now() - g0;
      for (int i = 0; i < B * K; ++i) out_mask[i] = (frand(&seed) + 0.5f) < tau;
      for (int j = 0; j < K; ++j) macs += cc_gated_dense_block(&p, j, ex);
    }
    t[r] = now() - t0;
    t_gate[r] = gate;
    macs_total += (double)macs;
  }
  bytes_total = macs_total * (int8 ? 1.0 : 4.0);
  qsort(t, runs, sizeof(double), cmp);
  qsort(t_gate, runs, sizeof(double), cmp);
  printf("batch %d tau %.2f flush %d int8 %d: median %.3f ms, %.2f MMAC/run, isa %s\n", B, tau,
         flush, int8, t[runs / 2] * 1e3, macs_total / runs / 1e6,
         int8 ? cc_kernel_isa_q8() : cc_kernel_isa());
  printf("  weights streamed (batch 1 estimate) %.1f GB/s; phase 1 (policy%s) %.1f us\n",
         (bytes_total / runs) / t[runs / 2] / 1e9, int8 ? " + int8 activations" : "",
         t_gate[runs / 2] * 1e6);
  (void)sink;
  return 0;
}
