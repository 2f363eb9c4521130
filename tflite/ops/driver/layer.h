// A gated layer as the driver's modes see it: attributes, weights (the
// block-major layout of the custom ops), inputs and, read from a file, the
// outputs another runtime computed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ccdrv {

struct Layer {
  int op = 0;  // 0 dense, 1 conv
  int B = 1;
  int D = 1;  // dense input dim, or conv C_in
  int H = 1, W = 1;
  int K = 1, bs = 1;
  int KH = 1, KW = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  bool same = false;
  int ibs_opt = 0;  // option value: 0 = whole input
  int act = 0;
  float thr = 0.5f;
  int top_k = 0;               // 0: threshold rule
  bool scale_by_gate = false;  // computed blocks times sigmoid(logit)
  bool has_bias = true;
  // run_kernels: tell the dense kernels which weights are finite (they may
  // then skip zero inputs' rows at batch 1); drawn so both paths run.
  bool declare_finite = false;
  std::vector<float> x, kernel, bias, wp, bp;  // kernel block-major
  // Dynamic-range int8 (quantize_int8): kernel_q[K][rows][bs] * kernel_scale[K*bs].
  bool quant = false;
  std::vector<int8_t> kernel_q;
  std::vector<float> kernel_scale;
  // Static activation scales (static_scales), one per input block; empty:
  // per-example scales.
  std::vector<float> input_scale;
  // The folded output layer (dense only, option head_units): wh [units][head],
  // bh [head] (omitted: has_head_bias false).
  int head = 0;
  bool has_head_bias = true;
  std::vector<float> wh, bh;
  std::vector<float> y_expected;  // model: Keras output; check: the output to check
  std::vector<int> y_shape;       // check: its shape
  std::string name;

  int ibs() const { return ibs_opt == 0 ? D : ibs_opt; }
  int units() const { return K * bs; }
};

// Rows of the block-major kernel [K][rows][bs]: D, or KH*KW*C for a conv.
inline int kernel_rows(const Layer& L) { return L.op == 0 ? L.D : L.KH * L.KW * L.D; }

}  // namespace ccdrv
