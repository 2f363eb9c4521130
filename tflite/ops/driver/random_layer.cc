// Random valid layers (random_layer.h).

#include "random_layer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "reference.h"

namespace ccdrv {

void fill_normal(Rng& r, std::vector<float>& v, size_t n, double scale) {
  v.resize(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(r.normal() * scale);
}

namespace {

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

}  // namespace

// Random valid layer. `special`: NaN / +-Inf / huge values injected in x.
Layer random_layer(Rng& r, bool conv, bool special) {
  Layer L;
  L.op = conv ? 1 : 0;
  L.B = r.chance(0.05) ? 0 : r.range(1, r.chance(0.2) ? 9 : 4);
  L.K = r.range(1, 8);
  static const std::vector<int> kBs = {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 24, 31, 32, 33, 64, 65};
  L.bs = r.pick(kBs);
  if (conv) {
    L.D = r.range(1, 12);
    L.H = r.range(r.chance(0.05) ? 0 : 1, 9);
    L.W = r.range(r.chance(0.05) ? 0 : 1, 9);
    L.KH = r.range(1, 4);
    L.KW = r.range(1, 4);
    L.sh = r.range(1, 3);
    L.sw = r.range(1, 3);
    L.dh = r.chance(0.3) ? r.range(1, 3) : 1;
    L.dw = r.chance(0.3) ? r.range(1, 3) : 1;
    L.same = r.chance(0.5);
    if (L.bs > 33) L.bs = 33;
  } else {
    L.D = r.chance(0.2) ? r.range(1, 300) : r.range(1, 40);
  }
  // The trained models' shape (a gated layer after a gated layer): full
  // 32-output strips and several input blocks per example, so the int8
  // kernels for many examples per tile and many tiles per example run.
  const bool stacked = !conv && r.chance(0.15);
  int stacked_ibs = 0;
  if (stacked) {
    static const std::vector<int> kStackedIbs = {4, 8, 16, 64};
    L.bs = r.chance(0.5) ? 32 : 64;
    stacked_ibs = r.pick(kStackedIbs);
    L.D = stacked_ibs * r.range(3, 12);
  }
  // Rows wide enough for the float conv's widest register tiles (8 output
  // pixels inside the padding), with blocks of the int8 conv kernel's strip
  // widths (8, 16, 32 filters).
  const bool wide = conv && r.chance(0.15);
  if (wide) {
    static const std::vector<int> kWideBs = {8, 16, 32};
    L.W = r.range(10, 20);
    L.bs = r.pick(kWideBs);
    L.B = r.range(1, 2);
  }
  if (conv) {
    // Keep the double-precision reference cheap (it also runs under qemu).
    auto work = [&L]() {
      return static_cast<double>(std::max(L.B, 1)) * L.H * L.W * L.K * L.bs * L.KH * L.KW * L.D;
    };
    while (wide && work() > 4e5 && L.H > 1) --L.H;
    while (wide && work() > 4e5 && L.K > 1) --L.K;
    while (work() > 4e5 && L.bs > 1) L.bs = (L.bs + 1) / 2;
    while (work() > 4e5 && L.K > 1) --L.K;
    while (work() > 4e5 && L.H > 1) --L.H;
  }
  std::vector<int> dv = divisors(L.D);
  L.ibs_opt = stacked ? stacked_ibs : r.chance(0.3) ? 0 : r.pick(dv);
  L.act = r.range(0, kNumActs - 1);
  static const std::vector<float> kThr = {0.5f, 0.5f, 0.0f, 1.0f, 0.25f, 0.9f, 0.1f, 0.5f};
  L.thr = r.chance(0.3) ? static_cast<float>(r.uniform()) : r.pick(kThr);
  L.top_k = r.chance(0.3) ? r.range(1, L.K) : 0;
  L.scale_by_gate = r.chance(0.3);
  L.has_bias = r.chance(0.8);
  L.declare_finite = r.chance(0.5);
  // Positions per example (a conv's H*W, 1 for dense), and inputs per example.
  const size_t per_ex = conv ? static_cast<size_t>(L.H) * L.W : 1;
  const size_t x_per_ex = per_ex * static_cast<size_t>(L.D);
  const size_t nx = static_cast<size_t>(L.B) * x_per_ex;
  fill_normal(r, L.x, nx, 1.0);
  // Non-negative inputs (pixels, relu outputs), per example, some with one
  // negative value: the int8 kernels' strips whose bytes are all >= 0 skip
  // the sign transfer, a strip with one negative byte does not.
  for (int e = 0; e < L.B && x_per_ex > 0; ++e) {
    if (!r.chance(0.4)) continue;
    float* xe = L.x.data() + static_cast<size_t>(e) * x_per_ex;
    for (size_t c = 0; c < x_per_ex; ++c) xe[c] = std::fabs(xe[c]);
    if (r.chance(0.5)) xe[r.next() % x_per_ex] = -static_cast<float>(0.5 + r.uniform());
  }
  // Zero input blocks (what a previous gated layer leaves), per example.
  const int ibs = L.ibs(), nin = L.D / ibs;
  for (int e = 0; e < L.B; ++e) {
    const double pz = r.chance(0.5) ? r.uniform() : 0.0;
    for (int i = 0; i < nin; ++i) {
      if (!r.chance(pz)) continue;
      for (size_t s = 0; s < per_ex; ++s)
        for (int c = i * ibs; c < (i + 1) * ibs; ++c)
          L.x[(static_cast<size_t>(e) * per_ex + s) * L.D + c] = r.chance(0.5) ? 0.0f : -0.0f;
    }
  }
  // Runs of zeros inside the blocks (zero pixels, zero relu outputs), per
  // example: whole quads of zero activations, which the int8 kernels skip.
  for (int e = 0; e < L.B; ++e) {
    const size_t row = static_cast<size_t>(L.D), n_rows = per_ex;
    if (n_rows * row == 0 || !r.chance(0.3)) continue;
    const size_t base = static_cast<size_t>(e) * per_ex * row;
    const int runs = r.range(1, 6);
    for (int t = 0; t < runs; ++t) {
      const size_t start = r.next() % (n_rows * row);
      const size_t len = static_cast<size_t>(r.range(1, 24));
      for (size_t c = start; c < std::min(start + len, n_rows * row); ++c) L.x[base + c] = 0.0f;
    }
  }
  // Scattered zeros (background pixels, relu outputs), per example: every
  // pattern of zeros among 4 consecutive inputs, which the batch-1 list of
  // non-zero inputs (cc_gate.c nonzero_rows) takes 4 at a time.
  for (int e = 0; e < L.B; ++e) {
    if (!r.chance(0.5)) continue;
    const double pz = r.uniform();
    const size_t base = static_cast<size_t>(e) * x_per_ex;
    for (size_t c = 0; c < x_per_ex; ++c)
      if (r.chance(pz)) L.x[base + c] = r.chance(0.5) ? 0.0f : -0.0f;
  }
  if (special && nx) {
    const int n = r.range(1, 3);
    for (int t = 0; t < n; ++t) {
      const size_t at = r.next() % nx;
      const int kind = r.range(0, 3);
      L.x[at] = kind == 0   ? std::numeric_limits<float>::quiet_NaN()
                : kind == 1 ? std::numeric_limits<float>::infinity()
                : kind == 2 ? -std::numeric_limits<float>::infinity()
                            : (r.chance(0.5) ? 1e30f : -1e30f);
    }
  }
  const size_t nk = conv ? static_cast<size_t>(L.K) * L.KH * L.KW * L.D * L.bs
                         : static_cast<size_t>(L.K) * L.D * L.bs;
  const double fan_in = conv ? static_cast<double>(L.KH) * L.KW * L.D : L.D;
  fill_normal(r, L.kernel, nk, 1.0 / std::sqrt(fan_in));
  if (!conv && nk && r.chance(special ? 0.3 : 0.1)) {
    // A non-finite weight against an input that is exactly 0 in a non-zero
    // block (0 * Inf and 0 * NaN are NaN): the kernels may not skip that row.
    const size_t at = r.next() % nk;
    const size_t row = at / static_cast<size_t>(L.bs) % static_cast<size_t>(L.D);
    L.kernel[at] = r.chance(0.5) ? std::numeric_limits<float>::quiet_NaN()
                                 : std::numeric_limits<float>::infinity();
    for (int e = 0; e < L.B; ++e) L.x[static_cast<size_t>(e) * L.D + row] = 0.0f;
  }
  if (L.has_bias) fill_normal(r, L.bias, static_cast<size_t>(L.units()), 0.3);
  fill_normal(r, L.wp, static_cast<size_t>(L.D) * L.K,
              (r.chance(0.2) ? 3.0 : 1.0) / std::sqrt(L.D));
  fill_normal(r, L.bp, static_cast<size_t>(L.K), 1.5);
  return L;
}

// Makes a layer dynamic-range int8: symmetric per-output-unit weights (the
// rule of keras_condcomp.converter.quantize_kernel, written again here) over
// the kernel's rows (D, or KH*KW*C for a conv: block-major [K][rows][bs]).
void quantize_int8(Layer* L) {
  const int U = L->units(), bs = L->bs, rows = kernel_rows(*L);
  L->quant = true;
  L->kernel_scale.assign(U, 1.0f);
  L->kernel_q.assign(L->kernel.size(), 0);
  for (int u = 0; u < U; ++u) {
    const int j = u / bs, c = u % bs;
    double m = 0.0;
    for (int d = 0; d < rows; ++d)
      m = std::max(
          m,
          std::fabs(static_cast<double>(L->kernel[(static_cast<size_t>(j) * rows + d) * bs + c])));
    const float sc = m > 0 ? static_cast<float>(m) / 127.0f : 1.0f;
    L->kernel_scale[u] = sc;
    for (int d = 0; d < rows; ++d) {
      const size_t at = (static_cast<size_t>(j) * rows + d) * bs + c;
      const double v = std::nearbyint(L->kernel[at] / sc);
      L->kernel_q[at] = static_cast<int8_t>(std::max(-127.0, std::min(127.0, v)));
    }
  }
}

// Makes an int8 layer's activation scales static: per input block, the
// block's max |x| over the batch (and positions) / 127 times a factor that
// sometimes clips (< 1) or coarsens (> 1); tiny / subnormal / huge scales too,
// and a positive scale for blocks that are all zero here.
void static_scales(Layer* L, Rng& r) {
  const int ibs = L->ibs(), nin = L->D / ibs;
  const size_t positions = L->op == 0 ? 1 : static_cast<size_t>(L->H) * L->W;
  std::vector<double> m(nin, 0.0);
  for (int e = 0; e < L->B; ++e)
    for (size_t pos = 0; pos < positions; ++pos)
      for (int c = 0; c < L->D; ++c) {
        const float v = L->x[(static_cast<size_t>(e) * positions + pos) * L->D + c];
        if (std::isfinite(v)) m[c / ibs] = std::max(m[c / ibs], std::fabs(static_cast<double>(v)));
      }
  static const std::vector<double> kFactors = {1.0, 1.0, 0.25, 0.7, 3.0};
  L->input_scale.assign(nin, 1.0f);
  for (int i = 0; i < nin; ++i) {
    double sc = m[i] > 0.0 ? m[i] / 127.0 * r.pick(kFactors) : 0.05 + r.uniform();
    if (r.chance(0.03)) sc = r.chance(0.5) ? 1e-41 : 1e30;  // subnormal / huge: clamps, no UB
    L->input_scale[i] = std::max(static_cast<float>(sc), std::numeric_limits<float>::denorm_min());
  }
}

void make_int8(Layer* L, Rng& r, Stats* st) {
  // int8 layers have finite weights (the converter refuses others).
  for (float& w : L->kernel)
    if (!std::isfinite(w)) w = 0.0f;
  quantize_int8(L);
  st->int8_cases++;
  st->int8_conv_cases += L->op != 0;
  if (r.chance(0.5)) {
    static_scales(L, r);
    st->int8_static_cases++;
  }
}

}  // namespace ccdrv
