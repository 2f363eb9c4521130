/* The int8 weight layout and the portable int8 dot kernel.
 *
 * cc_q8_pack (condcomp_kernels.h) packs int8 block-major weights into the
 * tiles of strips the dot kernels read (cc_kernels_internal.h: dot_q8_fn).
 * cc_dot_q8_generic is the kernel of CPUs without a vector one (the x86-64
 * SSE2 baseline, CPUs other than x86-64 and aarch64), cc_dot_q8_columns
 * also the vector kernels' last columns.
 */
#include "cc_kernels_internal.h"

#include <string.h>

size_t cc_q8_packed_size(int K, int D, int bs, int ibs) {
  if (K < 1 || D < 1 || bs < 1 || ibs < 1 || D % ibs != 0) return 0;
  const size_t tiles = (size_t)K * (size_t)(D / ibs);
  /* The tiles (a multiple of 4 bytes), then one int32 offset sum per tile
   * and output (cc_q8_offset_sums). */
  return tiles * (size_t)((ibs + 3) / 4) * 4 * (size_t)bs + tiles * (size_t)bs * sizeof(int32_t);
}

/* Tile (j, i) is Q * 4 * bs bytes: its strips of CC_Q8_STRIP columns (the
 * last one narrower) one after another, each [Q][cols][4]. After the tiles,
 * offset_sums[(j * n_in + i) * bs + c] = 128 * sum_r w(j, i * ibs + r, c),
 * the share of the unsigned-offset activations (xq + 128) that the group and
 * conv kernels subtract, taken mod 2^32 (uint32 arithmetic; exact in int32
 * for tiles of at most CC_Q8_MAX_QUADS quads, the only ones those kernels
 * take). */
void cc_q8_pack(const int8_t* kernel_bm, int K, int D, int bs, int ibs, int8_t* packed) {
  const int n_in = D / ibs, Q = (ibs + 3) / 4;
  const size_t tiles_bytes = (size_t)K * n_in * Q * 4 * bs;
  int8_t* sums_bytes = packed + tiles_bytes;
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
      for (int c = 0; c < bs; ++c) {
        uint32_t sum = 0;
        for (int r = 0; r < ibs; ++r)
          sum += (uint32_t)(int32_t)kernel_bm[((size_t)j * D + (size_t)i * ibs + r) * bs + c];
        const int32_t v = (int32_t)(sum * 128u);
        memcpy(sums_bytes + (((size_t)j * n_in + i) * bs + c) * sizeof(v), &v, sizeof(v));
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
