/* Phase 2 of a gated conv with int8 weights (cc_gated_conv2d_block with
 * kernel_q): output block j of every example with it on, through the int8
 * dot kernels this CPU runs (cc_select_q8).
 */
#include "cc_kernels_internal.h"

#include <string.h>

/* The strip widths the conv kernels take. */
static inline int conv_kernel_strip(int cols) { return cols == 8 || cols == 16 || cols == 32; }

/* run pixels (their activations x_step apart from xq, outputs y_step apart
 * from y) against one strip through the conv kernel, in near-equal tiles of
 * at most CC_Q8_CONV_PIXELS. */
static inline void conv_strip_tiles(dot_q8_conv_fn conv, const int8_t* strip, const int32_t* sums,
                                    const cc_q8_conv_taps* taps, int Q, int cols, const int8_t* xq,
                                    size_t x_step, int run, float s, float* y, size_t y_step,
                                    int store) {
  for (int done = 0, tiles = (run + CC_Q8_CONV_PIXELS - 1) / CC_Q8_CONV_PIXELS; done < run;
       --tiles) {
    const int n = (run - done + tiles - 1) / tiles;
    conv(strip, sums, taps, Q, cols, xq + (size_t)done * x_step, x_step, n, s,
         y + (size_t)done * y_step, y_step, store);
    done += n;
  }
}

int cc_conv_q8_fused_outputs(const cc_gated_conv2d* p) {
  const int bs = p->block_size, Q = (p->in_block_size + 3) / 4;
  if (!cc_select_q8()->conv || (uint64_t)p->kernel_h * p->kernel_w * Q > CC_Q8_MAX_QUADS) return 0;
  /* All or none: the conv kernel reads the activations with their offset,
   * dot_q8_fn without, and phase 1 writes them one way. */
  return conv_kernel_strip(bs - (bs - 1) / CC_Q8_STRIP * CC_Q8_STRIP) ? bs : 0;
}

/* Zero output block j's values (bs floats, rows `units` apart) at the
 * output pixels [oh0, oh1) x [ow0, ow1) of ye. */
static void zero_pixels(float* ye, int oh0, int oh1, int ow0, int ow1, int OW, size_t units,
                        int bs) {
  for (int oh = oh0; oh < oh1; ++oh)
    for (int ow = ow0; ow < ow1; ++ow)
      memset(ye + ((size_t)oh * OW + ow) * units, 0, sizeof(float) * (size_t)bs);
}

/* Output block j of a conv with int8 weights. Where the conv kernel takes
 * the block (cc_conv_q8_fused_outputs: this CPU has one, KH * KW * Q is
 * within CC_Q8_MAX_QUADS and the block's strips are 8, 16 or 32 outputs
 * wide), its strips go per rectangle of output pixels that read inside the
 * input through the same taps (a run of rows with the same inside tap rows
 * [kh0, kh1) by a run of columns with the same inside tap columns [kw0, kw1)
 * (conv_same_taps); for a 3x3 'same' conv with stride 1: the corners, the
 * edges and the interior) and channel block i: each kernel call takes the
 * int32 sums of a tile of pixels over all of block i's taps in registers
 * before one float step. The tiles run along the rectangle's longer side
 * (down a left or right edge one column wide), so that the calls get many
 * pixels. Otherwise the strips go per output row, tap column kw (over the
 * run of output columns reading inside the input, input columns stride_w
 * apart) and channel block i: one dot_q8_fn call per (kh, kw, i) strip over
 * the run, the tile staying in L1 while the pixels use it. Where the strips
 * go through the conv kernel, the first input block on stores its sums (0 +
 * the float step, the same value) instead of adding them to a zero-filled y,
 * and only the pixels no call reaches (no tap inside the input, or no input
 * block on) are zeroed: one pass less over the block's outputs. */
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
  /* Consecutive tap columns and tap rows: the next tiles, offset sums and
   * input pixels. Consecutive output columns and rows: the next input pixels
   * and outputs. */
  const size_t w_step_w = (size_t)n_in * tile_bytes, w_step_h = (size_t)KW * w_step_w;
  const size_t sums_step_w = (size_t)n_in * bs, sums_step_h = (size_t)KW * sums_step_w;
  const size_t x_step_w = (size_t)p->dilation_w * pixel_bytes;
  const size_t x_step_h = (size_t)p->dilation_h * p->in_w * pixel_bytes;
  const size_t x_col = (size_t)p->stride_w * pixel_bytes;
  const size_t x_row = (size_t)p->stride_h * p->in_w * pixel_bytes, y_row = (size_t)OW * units;
  /* Strips [0, fused) take all of a pixel's inside taps per conv call,
   * [fused, bs) one tap's per dot call: fused is bs or 0. */
  const dot_q8_conv_fn conv = q8->conv;
  const int fused = cc_conv_q8_fused_outputs(p);
  uint64_t macs = 0;
  for (int e = 0; e < p->batch; ++e) {
    const uint8_t* act = p->in_active + (size_t)e * n_in;
    int first_on = 0; /* the first input block on, n_in if none */
    while (first_on < n_in && !act[first_on]) ++first_on;
    const int stores = fused == bs && first_on < n_in && p->out_mask[(size_t)e * K + j] == 1;
    if (!stores && !cc_conv_block_begin(p, j, e, NULL)) continue;
    float* ye = p->y + (size_t)e * OH * OW * units + (size_t)j * bs;
    const int8_t* xe = p->xq + (size_t)e * hw * pixel_bytes;
    const float* xs_scale = p->xq_scale + (size_t)e * n_in;
    for (int oh0 = 0, oh1; fused > 0 && oh0 < OH; oh0 = oh1) {
      int kh0, kh1;
      oh1 = conv_same_taps(p, oh0, p->out_h, conv_inside_rows, &kh0, &kh1);
      if (kh1 == kh0) {
        if (stores) zero_pixels(ye, oh0, oh1, 0, OW, OW, units, bs);
        continue;
      }
      for (int ow0 = 0, ow1; ow0 < OW; ow0 = ow1) {
        int kw0, kw1;
        ow1 = conv_same_taps(p, ow0, p->out_w, conv_inside_tap_cols, &kw0, &kw1);
        if (kw1 == kw0) {
          if (stores) zero_pixels(ye, oh0, oh1, ow0, ow1, OW, units, bs);
          continue;
        }
        const cc_q8_conv_taps taps = {kh1 - kh0,   kw1 - kw0,   w_step_h, w_step_w,
                                      sums_step_h, sums_step_w, x_step_h, x_step_w};
        const size_t t0 = (size_t)(kh0 * KW + kw0) * n_in; /* tap (kh0, kw0)'s first tile */
        const int8_t* x0 = xe + ((size_t)conv_input_row(p, oh0, kh0) * p->in_w +
                                 (size_t)conv_input_col(p, ow0, kw0)) *
                                    pixel_bytes;
        float* y0 = ye + ((size_t)oh0 * OW + ow0) * units;
        /* Lines of `run` pixels: the rectangle's rows, or its columns where
         * it is taller than wide. */
        const int down = oh1 - oh0 > ow1 - ow0;
        const int lines = down ? ow1 - ow0 : oh1 - oh0, run = down ? oh1 - oh0 : ow1 - ow0;
        const size_t x_line = down ? x_col : x_row, x_pixel = down ? x_row : x_col;
        const size_t y_line = down ? units : y_row, y_pixel = down ? y_row : units;
        for (int l = 0; l < lines; ++l) {
          const int8_t* xl = x0 + (size_t)l * x_line;
          float* yl = y0 + (size_t)l * y_line;
          for (int i = 0; i < n_in; ++i) {
            if (!act[i]) continue;
            for (int c0 = 0; c0 < fused; c0 += CC_Q8_STRIP) {
              const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
              conv_strip_tiles(conv, wj + (t0 + i) * tile_bytes + (size_t)c0 * Q * 4,
                               sums_j + (t0 + i) * bs + c0, &taps, Q, cols, xl + (size_t)i * Q * 4,
                               x_pixel, run, xs_scale[i], yl + c0, y_pixel,
                               stores && i == first_on);
            }
            macs += (uint64_t)taps.taps_h * taps.taps_w * run * ibs * fused;
          }
        }
      }
    }
    for (int oh = 0; fused < bs && oh < OH; ++oh) {
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
          for (int c0 = fused; c0 < bs; c0 += CC_Q8_STRIP) {
            const int cols = bs - c0 < CC_Q8_STRIP ? bs - c0 : CC_Q8_STRIP;
            const int8_t* strip = tile + (size_t)c0 * Q * 4;
            for (int kh = kh0; kh < kh1; ++kh)
              dot_q8_strip(dot, strip + (size_t)(kh - kh0) * w_step_h, Q, cols,
                           xq + (size_t)(kh - kh0) * x_step_h, x_col, xs_scale[i], y + c0, units,
                           ow1 - ow0);
          }
          macs += (uint64_t)(kh1 - kh0) * (ow1 - ow0) * ibs * (bs - fused);
        }
      }
    }
    const float* bias = p->bias ? p->bias + (size_t)j * bs : NULL;
    cc_finish_q8_outputs(ye, (size_t)OH * OW, units, bs, p->kernel_scale + (size_t)j * bs, bias,
                         p->activation);
    for (size_t s = 0; p->gate_scale && s < (size_t)OH * OW; ++s)
      scale_block(ye + s * units, bs, p->gate_scale, (size_t)e * K + j);
  }
  return macs;
}
