/* The int8 weight layout and the portable int8 dot kernel.
 *
 * cc_q8_pack (condcomp_kernels.h) packs int8 block-major weights into the
 * tiles of strips the dot kernels read (cc_kernels_internal.h: dot_q8_fn).
 * cc_dot_q8_generic is the kernel of CPUs without a vector one (the x86-64
 * SSE2 baseline, CPUs other than x86-64 and aarch64), cc_dot_q8_columns
 * also the vector kernels' last columns.
 */
#include "cc_kernels_internal.h"

size_t cc_q8_packed_size(int K, int D, int bs, int ibs) {
  if (K < 1 || D < 1 || bs < 1 || ibs < 1 || D % ibs != 0) return 0;
  return (size_t)K * (size_t)(D / ibs) * (size_t)((ibs + 3) / 4) * 4 * (size_t)bs;
}

/* Tile (j, i) is Q * 4 * bs bytes: its strips of CC_Q8_STRIP columns (the
 * last one narrower) one after another, each [Q][cols][4]. */
void cc_q8_pack(const int8_t* kernel_bm, int K, int D, int bs, int ibs, int8_t* packed) {
  const int n_in = D / ibs, Q = (ibs + 3) / 4;
  for (int j = 0; j < K; ++j) {
    for (int i = 0; i < n_in; ++i) {
      int8_t* tile = packed + ((size_t)j * n_in + i) * Q * 4 * bs;
      for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP) {
        const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
        int8_t* strip = tile + (size_t)c0 * Q * 4;
        for (int r = 0; r < Q * 4; ++r) {
          int8_t* dst = strip + (size_t)(r / 4) * cols * 4 + r % 4;
          const int8_t* src = kernel_bm + ((size_t)j * D + (size_t)i * ibs + r) * bs + c0;
          for (int c = 0; c < cols; ++c) dst[4 * c] = r < ibs ? src[c] : 0;
        }
      }
    }
  }
}

/* Columns [0, n) of a strip whose quads are `ld` bytes apart. */
void cc_dot_q8_columns(const int8_t* w, size_t ld, int Q, int n, const int8_t* xq, float s,
                       float* y) {
  int32_t acc[CC_Q8_STRIP] = {0};
  for (int q = 0; q < Q; ++q) {
    const int8_t* wq = w + q * ld;
    const int32_t x0 = xq[4 * q], x1 = xq[4 * q + 1], x2 = xq[4 * q + 2], x3 = xq[4 * q + 3];
    for (int c = 0; c < n; ++c)
      acc[c] += x0 * wq[4 * c] + x1 * wq[4 * c + 1] + x2 * wq[4 * c + 2] + x3 * wq[4 * c + 3];
  }
  for (int c = 0; c < n; ++c) y[c] += s * (float)acc[c];
}

static void dot_q8_generic_one(const int8_t* w, int Q, int cols, const int8_t* xq, float s,
                               float* y) {
  cc_dot_q8_columns(w, (size_t)cols * 4, Q, cols, xq, s, y);
}
CC_Q8_PIXELS(cc_dot_q8_generic, dot_q8_generic_one)
