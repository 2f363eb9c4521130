/* Phase 2 of a gated conv with int8 weights (cc_gated_conv2d_block with
 * kernel_q): output block j of every example with it on, through the int8
 * dot kernels this CPU runs (cc_select_q8).
 */
#include "cc_kernels_internal.h"

#include <string.h>

/* Output block j of a conv with int8 weights, per output row and tap
 * column kw (over the run of output columns reading inside the input, input
 * columns stride_w apart) and channel block i: where this CPU has a conv
 * kernel (strips of 8, 16 or 32 outputs), up to CC_Q8_CONV_PIXELS pixels at a
 * time take the int32 sums over all the row's tap rows kh in registers before
 * one float step; otherwise each (kh, kw, i) strip is one dot_q8_fn call
 * over the run, the tile staying in L1 while the pixels use it. */
uint64_t cc_conv_block_q8(const cc_gated_conv2d* p, int j) {
  const cc_q8_kernels* q8 = cc_select_q8();
  const dot_q8_fn dot = q8->dot;
  const int K = p->num_blocks, bs = p->block_size, C = p->in_c;
  const int ibs = p->in_block_size, n_in = C / ibs, Q = (ibs + 3) / 4;
  const int OH = p->out_h, OW = p->out_w, KH = p->kernel_h, KW = p->kernel_w;
  const size_t units = (size_t)K * bs, tile_bytes = (size_t)Q * 4 * bs;
  const size_t hw = (size_t)p->in_h * p->in_w, pixel_bytes = (size_t)n_in * Q * 4;
  const size_t taps_tiles = (size_t)KH * KW * n_in; /* tiles per output block */
  const int8_t* wj = p->kernel_q + (size_t)j * taps_tiles * tile_bytes;
  const int32_t* sums_j = cc_q8_offset_sums(p->kernel_q, (size_t)K * taps_tiles, tile_bytes) +
                          (size_t)j * taps_tiles * bs;
  /* Consecutive tap rows: the next kh's tiles, offset sums and input row. */
  const size_t w_tap_step = (size_t)KW * n_in * tile_bytes, sums_tap_step = (size_t)KW * n_in * bs;
  const size_t x_tap_step = (size_t)p->dilation_h * p->in_w * pixel_bytes;
  const size_t x_step = (size_t)p->stride_w * pixel_bytes;
  const dot_q8_conv_fn conv = (uint64_t)KH * Q <= CC_Q8_MAX_QUADS ? q8->conv : NULL;
  uint64_t macs = 0;
  for (int e = 0; e < p->batch; ++e) {
    if (!cc_conv_block_begin(p, j, e, NULL)) continue;
    float* ye = p->y + (size_t)e * OH * OW * units + (size_t)j * bs;
    const int8_t* xe = p->xq + (size_t)e * hw * pixel_bytes;
    const float* xs_scale = p->xq_scale + (size_t)e * n_in;
    const uint8_t* act = p->in_active + (size_t)e * n_in;
    for (int oh = 0; oh < OH; ++oh) {
      int kh0, kh1;
      conv_inside_rows(p, oh, &kh0, &kh1);
      if (kh1 == kh0) continue;
      const int ih0 = conv_input_row(p, oh, kh0);
      for (int kw = 0; kw < KW; ++kw) {
        int ow0, ow1;
        conv_inside_cols(p, kw, &ow0, &ow1);
        if (ow1 == ow0) continue;
        const int iw0 = conv_input_col(p, ow0, kw);
        for (int i = 0; i < n_in; ++i) {
          if (!act[i]) continue;
          const size_t t0 = (size_t)(kh0 * KW + kw) * n_in + i; /* tile of tap (kh0, kw) */
          const int8_t* tile = wj + t0 * tile_bytes;
          const int8_t* xq = xe + ((size_t)ih0 * p->in_w + iw0) * pixel_bytes + (size_t)i * Q * 4;
          float* y = ye + ((size_t)oh * OW + ow0) * units;
          for (int c0 = 0; c0 < bs; c0 += CC_Q8_STRIP) {
            const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
            const int8_t* strip = tile + (size_t)c0 * Q * 4;
            if (conv && (cols == 8 || cols == 16 || cols == 32)) {
              /* The run in near-equal tiles of at most CC_Q8_CONV_PIXELS. */
              const int run = ow1 - ow0;
              for (int done = 0, tiles = (run + CC_Q8_CONV_PIXELS - 1) / CC_Q8_CONV_PIXELS;
                   done < run; --tiles) {
                const int n = (run - done + tiles - 1) / tiles;
                conv(strip, w_tap_step, sums_j + t0 * bs + c0, sums_tap_step, kh1 - kh0, Q, cols,
                     xq + (size_t)done * x_step, x_tap_step, x_step, n, xs_scale[i],
                     y + (size_t)done * units + c0, units);
                done += n;
              }
              continue;
            }
            for (int kh = kh0; kh < kh1; ++kh)
              dot_q8_strip(dot, strip + (size_t)(kh - kh0) * w_tap_step, Q, cols,
                           xq + (size_t)(kh - kh0) * x_tap_step, x_step, xs_scale[i], y + c0, units,
                           ow1 - ow0);
          }
          macs += (uint64_t)(kh1 - kh0) * (ow1 - ow0) * ibs * bs;
        }
      }
    }
    const float* bias = p->bias ? p->bias + (size_t)j * bs : NULL;
    for (size_t s = 0; s < (size_t)OH * OW; ++s) {
      finish_q8_outputs(ye + s * units, bs, p->kernel_scale + (size_t)j * bs, bias, p->activation);
      scale_block(ye + s * units, bs, p->gate_scale, (size_t)e * K + j);
    }
  }
  return macs;
}
