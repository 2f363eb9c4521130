// Layer files: the gated layers another program hands the driver, with the
// outputs to compare (little endian).
//
// CCLAYER1, written by tflite/arm/export_layers.py for `model FILE` (the
// layers of a Keras model with Keras' outputs):
//   "CCLAYER1" i32 n_layers, then per layer:
//   i32 op (0 dense, 1 conv), i32 name_len, name, i32 act_len, act,
//   f32 threshold, i32 has_bias,
//   i32 B, D (or C_in), H, W, K, bs, KH, KW, sh, sw, dh, dw, same, ibs_opt,
//   f32 x[...], kernel_bm[...], bias[units] (if has_bias), wp[D*K], bp[K], y[...]
//   (y has the reference's shape).
//
// CCLAYER2, written by tests/test_native_fuzz.py for `check FILE` (layers
// run by another runtime, with the outputs it computed): CCLAYER1's fields
// up to ibs_opt, then
//   i32 top_k, i32 scale_by_gate, i32 int8, i32 n_input_scale,
//   f32 x[...], then the kernel: f32 kernel_bm[...] (int8 = 0), or
//   i8 kernel_q[...] and f32 kernel_scale[units] (int8 = 1),
//   f32 bias[units] (if has_bias), wp[D*K], bp[K], input_scale[n_input_scale],
//   i32 y_rank, i32 y_shape[y_rank], f32 y[...] (the shape the runtime gave).
//
// Activation names: those of reference.h (aliases included).
#pragma once

#include <string>
#include <vector>

#include "layer.h"

namespace ccdrv {

// Reads a CCLAYER1 or CCLAYER2 file; false with *err set if it cannot be
// read or is malformed.
bool load_layers(const char* path, std::vector<Layer>* layers, std::string* err);

}  // namespace ccdrv
