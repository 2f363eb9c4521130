// The float64 reference of docs/architecture.md and the comparison with it
// (reference.h), independent of the kernels and glue under test.

#include "reference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "condcomp_kernels.h"
#include "options.h"

namespace ccdrv {

const char* const kActNames[kNumActs] = {
    "linear",   "relu", "relu6", "sigmoid",    "tanh",         "elu",       "selu", "softplus",
    "softsign", "silu", "gelu",  "leaky_relu", "hard_sigmoid", "hard_silu", "mish", "exponential"};
static_assert(kNumActs == CC_ACT_COUNT, "activation list out of date");

int act_from_name(const std::string& name) {
  static const struct {
    const char* alias;
    int act;
  } kAliases[] = {
      {"None", CC_ACT_LINEAR}, {"swish", CC_ACT_SILU}, {"hard_swish", CC_ACT_HARD_SILU}};
  for (int a = 0; a < kNumActs; ++a)
    if (name == kActNames[a]) return a;
  for (const auto& al : kAliases)
    if (name == al.alias) return al.act;
  return -1;
}

namespace {
double softplus_ref(double v) {
  return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
}
}  // namespace

double act_ref(int a, double v) {
  if (std::isnan(v)) return v;
  switch (a) {
    case CC_ACT_LINEAR:
      return v;
    case CC_ACT_RELU:
      return v > 0 ? v : 0.0;
    case CC_ACT_RELU6:
      return v > 0 ? (v < 6 ? v : 6.0) : 0.0;
    case CC_ACT_SIGMOID:
      return 1.0 / (1.0 + std::exp(-v));
    case CC_ACT_TANH:
      return std::tanh(v);
    case CC_ACT_ELU:
      return v > 0 ? v : std::expm1(v);
    case CC_ACT_SELU:
      return 1.0507009873554804934193349852946 *
             (v > 0 ? v : 1.6732632423543772848170429916717 * std::expm1(v));
    case CC_ACT_SOFTPLUS:
      return softplus_ref(v);
    case CC_ACT_SOFTSIGN:
      return v / (1.0 + std::fabs(v));
    case CC_ACT_SILU:
      return v / (1.0 + std::exp(-v));
    case CC_ACT_GELU:
      return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case CC_ACT_LEAKY_RELU:
      return v > 0 ? v : 0.2 * v;
    case CC_ACT_HARD_SIGMOID: {
      double t = v + 3.0;
      t = t > 0 ? (t < 6 ? t : 6.0) : 0.0;
      return t / 6.0;
    }
    case CC_ACT_HARD_SILU: {
      double t = v + 3.0;
      t = t > 0 ? (t < 6 ? t : 6.0) : 0.0;
      return v * t / 6.0;
    }
    case CC_ACT_MISH:
      return v * std::tanh(softplus_ref(v));
    case CC_ACT_EXPONENTIAL:
      return std::exp(v);
  }
  return std::nan("");
}

// Activations whose kernel maps a NaN pre-activation to a number (Keras gives NaN).
bool nan_clamping_act(int a) {
  return a == CC_ACT_RELU || a == CC_ACT_RELU6 || a == CC_ACT_HARD_SIGMOID;
}

Gate gate_ref(double z, double err, float thr) {
  if (std::isnan(z)) return kOff;
  auto on = [thr](double v) {
    float s = static_cast<float>(1.0 / (1.0 + std::exp(-v)));
    return s > thr;
  };
  if (std::isinf(z)) return on(z) ? kOn : kOff;
  bool lo = on(z - err), hi = on(z + err);
  if (lo == hi) return lo ? kOn : kOff;
  return kAmbiguous;
}

// The top_k rule (keras_condcomp.reference.top_k_mask) for logits z +- err:
// block b is kOn when fewer than k other blocks could rank at or above it,
// kOff when at least k others rank surely above it, else kAmbiguous (a tie or
// a rounding-close pair: which one the kernel takes is then free). A row with
// a NaN logit is all kAmbiguous (NaN ranks below every number; not modelled).
void top_k_ref(const std::vector<double>& z, const std::vector<double>& err, int k, uint8_t* out) {
  const int K = static_cast<int>(z.size());
  for (int b = 0; b < K; ++b)
    if (std::isnan(z[b])) {
      for (int c = 0; c < K; ++c) out[c] = kAmbiguous;
      return;
    }
  for (int b = 0; b < K; ++b) {
    int could = 0, surely = 0;
    for (int c = 0; c < K; ++c) {
      if (c == b) continue;
      could += z[c] + err[c] >= z[b] - err[b];
      surely += z[c] - err[c] > z[b] + err[b];
    }
    out[b] = could < k ? kOn : surely >= k ? kOff : kAmbiguous;
  }
}

// Relative rounding bound of a float dot product of n terms (sequential or
// blocked summation, with or without FMA), generous.
double dot_err(long n, double abs_sum) {
  return (static_cast<double>(n) + 4.0) * 1.2e-7 * abs_sum + 1e-30;
}

std::string check_value(float y, const RefVal& r, int act, Stats* st, double glo, double ghi) {
  const double z = r.z;
  const bool scaled = glo != 1.0 || ghi != 1.0;
  const double ref = act_ref(act, z) * (scaled ? 0.5 * (glo + ghi) : 1.0);
  if (std::isnan(ref)) {
    if (std::isnan(y)) return "";
    if (std::isnan(z) && nan_clamping_act(act) && !g_opt.strict_nan) {
      st->nan_deviation++;
      return "";
    }
    char b[160];
    snprintf(b, sizeof b, "expected NaN, got %.9g (z=%g, %s)", y, z, kActNames[act]);
    return b;
  }
  if (std::isinf(z)) {
    // An infinite pre-activation: the kernel must give exactly act(+-inf)
    // (times the gate value: inf * 0 is NaN).
    const double a = act_ref(act, z);
    if (scaled) {
      if (std::isinf(a) ? (y == a || (std::isnan(y) && glo == 0.0))
                        : (y >= std::min(a * glo, a * ghi) - 4e-6 * std::fabs(a) - 1e-30 &&
                           y <= std::max(a * glo, a * ghi) + 4e-6 * std::fabs(a) + 1e-30))
        return "";
    }
    if (static_cast<double>(y) == ref) return "";
    if (std::isfinite(ref) && std::fabs(y - ref) <= 4e-6 * std::fabs(ref) + 1e-30) return "";
    char b[160];
    snprintf(b, sizeof b, "expected %g for z=%g (%s), got %.9g", ref, z, kActNames[act], y);
    return b;
  }
  const double d = r.err;
  double lo = ref, hi = ref;
  for (double zz : {z - d, z + d}) {
    double a = act_ref(act, zz);
    if (std::isnan(a)) continue;
    lo = std::min(lo, a);
    hi = std::max(hi, a);
  }
  // float evaluation of the activation itself (expf, tanhf, erff, ...).
  // (gelu's 1 + erf(z) cancels in float for z << 0: absolute error ~1e-7 |z|,
  // the same as Keras' float32 gelu.)
  const double tol = 4e-6 * std::max(std::fabs(lo), std::fabs(hi)) +
                     5e-7 * (1.0 + std::min(std::fabs(z), 1e3)) * (act == CC_ACT_GELU ? 1.0 : 0.0) +
                     1e-30;
  lo -= tol;
  hi += tol;
  const double fmax = std::numeric_limits<float>::max();
  // The unscaled value overflows float: times the gate value it stays
  // +-inf, or is NaN for a gate value of 0.
  if (scaled && (hi >= fmax || lo <= -fmax) && (std::isinf(y) || (std::isnan(y) && glo == 0.0)))
    return "";
  if (scaled) {
    // float sigmoid (expf) and the product: a few ulp of the value.
    const double l = std::min(lo * glo, lo * ghi), h = std::max(hi * glo, hi * ghi);
    const double t = 1e-6 * std::max(std::fabs(l), std::fabs(h));
    lo = l - t;
    hi = h + t;
  }
  if (std::isinf(y)) {
    if (y > 0 && hi >= fmax) return "";
    if (y < 0 && lo <= -fmax) return "";
  } else if (!std::isnan(y) && y >= lo && y <= hi) {
    return "";
  }
  // Values that round to +-inf / overflow in float.
  if (std::isnan(y) && (hi >= fmax || lo <= -fmax)) return "";
  char b[200];
  snprintf(b, sizeof b, "got %.9g, expected %.9g in [%.9g, %.9g] (z=%.9g +- %.3g, %s)", y, ref, lo,
           hi, z, d, kActNames[act]);
  return b;
}

void conv_geometry(int in, int k, int s, int d, bool same, int* out, int* pad) {
  const long eff = static_cast<long>(k - 1) * d + 1;
  if (same) {
    long o = (in + s - 1) / s;
    long total = (o - 1) * s + eff - in;
    if (total < 0) total = 0;
    *out = static_cast<int>(o);
    *pad = static_cast<int>(total / 2);
  } else {
    *out = in >= eff ? static_cast<int>((in - eff) / s + 1) : 0;
    *pad = 0;
  }
}

int quantize_value_ref(float x, double k) {
  const double v = std::nearbyint(static_cast<double>(x) * k);
  return static_cast<int>(std::max(-127.0, std::min(127.0, v)));
}

namespace {

// Block i's scale and k: static (L.input_scale[i], k = 1 / scale) or from the
// block's max |x| = m (scale m / 127 in float, k = 127 / m; 0 for m = 0).
float block_scale_ref(const Layer& L, int i, double m, double* k) {
  if (!L.input_scale.empty()) {
    *k = 1.0 / static_cast<double>(L.input_scale[i]);
    return L.input_scale[i];
  }
  *k = m > 0.0 ? 127.0 / m : 0.0;
  return m > 0.0 ? static_cast<float>(m) / 127.0f : 0.0f;
}

// One input block of a dense layer as the int8 op quantizes it.
void quantize_block_ref(const Layer& L, int i, const float* x, int n, std::vector<int>* q,
                        float* scale) {
  double m = 0.0;
  for (int r = 0; r < n; ++r) m = std::max(m, std::fabs(static_cast<double>(x[r])));
  q->assign(n, 0);
  double k;
  *scale = block_scale_ref(L, i, m, &k);
  if (m == 0.0) *scale = 0.0f;  // an all-zero block is skipped
  for (int r = 0; m > 0.0 && r < n; ++r) (*q)[r] = quantize_value_ref(x[r], k);
}

bool row_finite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

// z = b + scale_c * sum_i s_i * (xq_i . q_i): exact integer dots, then the
// op's few float steps (one per input block, the scale, the bias).
void reference_int8_values(const Layer& L, int e, Reference* R) {
  const int bs = L.bs, U = L.units(), ibs = L.ibs(), nin = L.D / ibs;
  const float* x = L.x.data() + static_cast<size_t>(e) * L.D;
  const bool finite = row_finite(x, static_cast<size_t>(L.D));
  std::vector<std::vector<int>> xq(nin);
  std::vector<float> s(nin, 0.0f);
  for (int i = 0; finite && i < nin; ++i)
    quantize_block_ref(L, i, x + static_cast<size_t>(i) * ibs, ibs, &xq[i], &s[i]);
  for (int u = 0; u < U; ++u) {
    const int j = u / bs, c = u % bs;
    RefVal& out = R->v[static_cast<size_t>(e) * U + u];
    if (!finite) {
      out = {std::nan(""), 0.0};
      continue;
    }
    const double b = L.has_bias ? L.bias[u] : 0.0, sc = L.kernel_scale[u];
    double z = 0.0, a = 0.0;
    for (int i = 0; i < nin; ++i) {
      if (s[i] == 0.0f) continue;
      long long acc = 0;
      for (int r = 0; r < ibs; ++r)
        acc +=
            static_cast<long long>(xq[i][r]) *
            L.kernel_q[(static_cast<size_t>(j) * L.D + static_cast<size_t>(i) * ibs + r) * bs + c];
      z += static_cast<double>(s[i]) * static_cast<double>(acc);
      a += std::fabs(static_cast<double>(s[i]) * static_cast<double>(acc));
    }
    out = {z * sc + b, dot_err(nin + 2, a * std::fabs(sc) + std::fabs(b))};
  }
}

// Calls f(kh, kw, input offset of (ih, iw) in positions) for every tap of
// output (oh, ow) that reads inside the input (TF padding: the others read 0).
template <typename F>
void for_each_valid_tap(const Layer& L, int oh, int ow, int pt, int pl, F f) {
  for (int kh = 0; kh < L.KH; ++kh) {
    const int ih = oh * L.sh - pt + kh * L.dh;
    if (ih < 0 || ih >= L.H) continue;
    for (int kw = 0; kw < L.KW; ++kw) {
      const int iw = ow * L.sw - pl + kw * L.dw;
      if (iw < 0 || iw >= L.W) continue;
      f(kh, kw, static_cast<size_t>(ih) * L.W + iw);
    }
  }
}

// The conv version: one scale per (example, channel block) over all
// positions; each (tap, channel block) an exact integer dot product.
void reference_int8_conv_values(const Layer& L, int e, int OH, int OW, int pt, int pl,
                                Reference* R) {
  const int bs = L.bs, U = L.units(), C = L.D, ibs = L.ibs(), nin = C / ibs;
  const long hw = static_cast<long>(L.H) * L.W;
  const float* xe = L.x.data() + static_cast<size_t>(e) * hw * C;
  std::vector<float> s(nin, 0.0f);
  std::vector<int> xq(static_cast<size_t>(hw) * C, 0);
  for (int i = 0; i < nin; ++i) {
    double m = 0.0;
    for (long p = 0; p < hw; ++p)
      for (int c = i * ibs; c < (i + 1) * ibs; ++c)
        m = std::max(m, std::fabs(static_cast<double>(xe[p * C + c])));
    if (m == 0.0) continue;
    double k;
    s[i] = block_scale_ref(L, i, m, &k);
    for (long p = 0; p < hw; ++p)
      for (int c = i * ibs; c < (i + 1) * ibs; ++c)
        xq[p * C + c] = quantize_value_ref(xe[p * C + c], k);
  }
  for (int oh = 0; oh < OH; ++oh)
    for (int ow = 0; ow < OW; ++ow)
      for (int u = 0; u < U; ++u) {
        const int j = u / bs, c = u % bs;
        const double b = L.has_bias ? L.bias[u] : 0.0, sc = L.kernel_scale[u];
        double z = 0.0, a = 0.0;
        long terms = 0;
        for_each_valid_tap(L, oh, ow, pt, pl, [&](int kh, int kw, size_t pos) {
          const int* xp = xq.data() + pos * C;
          const size_t row0 = ((static_cast<size_t>(j) * L.KH + kh) * L.KW + kw) * C;
          for (int i = 0; i < nin; ++i) {
            if (s[i] == 0.0f) continue;
            long long acc = 0;
            for (int ci = i * ibs; ci < (i + 1) * ibs; ++ci)
              acc += static_cast<long long>(xp[ci]) * L.kernel_q[(row0 + ci) * bs + c];
            z += static_cast<double>(s[i]) * static_cast<double>(acc);
            a += std::fabs(static_cast<double>(s[i]) * static_cast<double>(acc));
            ++terms;
          }
        });
        const size_t at = ((static_cast<size_t>(e) * OH + oh) * OW + ow) * U + u;
        R->v[at] = {z * sc + b, dot_err(terms + 2, a * std::fabs(sc) + std::fabs(b))};
      }
}

double sigmoid_ref(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Example e's gates from its policy logits: the top_k rule or the threshold;
// with scale_by_gate also the bounds of each gate value sigmoid(z +- err).
void set_gates(const Layer& L, const std::vector<double>& z, const std::vector<double>& err, int e,
               Reference* R) {
  const size_t at = static_cast<size_t>(e) * L.K;
  uint8_t* out = &R->gate[at];
  if (L.top_k > 0) {
    top_k_ref(z, err, L.top_k, out);
  } else {
    for (size_t k = 0; k < z.size(); ++k) out[k] = gate_ref(z[k], err[k], L.thr);
  }
  if (!L.scale_by_gate) return;
  R->glo.resize(R->gate.size());
  R->ghi.resize(R->gate.size());
  for (size_t k = 0; k < z.size(); ++k) {
    R->glo[at + k] = sigmoid_ref(z[k] - err[k]);
    R->ghi[at + k] = sigmoid_ref(z[k] + err[k]);
  }
}

}  // namespace

Reference reference(const Layer& L) {
  Reference R;
  const int K = L.K, bs = L.bs, U = L.units();
  if (L.op == 0) {
    R.shape = {L.B, U};
    R.v.resize(static_cast<size_t>(L.B) * U);
    R.gate.resize(static_cast<size_t>(L.B) * K);
    const int ibs = L.ibs();
    for (int e = 0; e < L.B; ++e) {
      const float* x = L.x.data() + static_cast<size_t>(e) * L.D;
      // An input block that is all zero contributes nothing, even against a
      // non-finite weight (the ops skip it; other zero inputs multiply).
      std::vector<bool> zero_block(static_cast<size_t>(L.D / ibs), true);
      for (int d = 0; d < L.D; ++d)
        if (x[d] != 0.0f) zero_block[d / ibs] = false;  // NaN counts as non-zero
      std::vector<double> zs(K), errs(K);
      for (int k = 0; k < K; ++k) {
        double z = L.bp[k], a = std::fabs(L.bp[k]);
        for (int d = 0; d < L.D; ++d) {
          if (zero_block[d / ibs]) continue;
          z += static_cast<double>(x[d]) * L.wp[static_cast<size_t>(d) * K + k];
          a += std::fabs(static_cast<double>(x[d]) * L.wp[static_cast<size_t>(d) * K + k]);
        }
        zs[k] = z;
        errs[k] = dot_err(L.D, a);
      }
      set_gates(L, zs, errs, e, &R);
      if (L.quant) {
        reference_int8_values(L, e, &R);
        continue;
      }
      for (int j = 0; j < K; ++j) {
        for (int c = 0; c < bs; ++c) {
          double z = L.has_bias ? L.bias[static_cast<size_t>(j) * bs + c] : 0.0;
          double a = std::fabs(z);
          for (int d = 0; d < L.D; ++d) {
            if (zero_block[d / ibs]) continue;
            const double w = L.kernel[(static_cast<size_t>(j) * L.D + d) * bs + c];
            z += static_cast<double>(x[d]) * w;
            a += std::fabs(static_cast<double>(x[d]) * w);
          }
          R.v[static_cast<size_t>(e) * U + static_cast<size_t>(j) * bs + c] = {z, dot_err(L.D, a)};
        }
      }
    }
    return R;
  }
  int OH, OW, pt, pl;
  conv_geometry(L.H, L.KH, L.sh, L.dh, L.same, &OH, &pt);
  conv_geometry(L.W, L.KW, L.sw, L.dw, L.same, &OW, &pl);
  const int C = L.D;
  R.shape = {L.B, OH, OW, U};
  R.v.resize(static_cast<size_t>(L.B) * OH * OW * U);
  R.gate.resize(static_cast<size_t>(L.B) * K);
  const long hw = static_cast<long>(L.H) * L.W;
  for (int e = 0; e < L.B; ++e) {
    const float* xe = L.x.data() + static_cast<size_t>(e) * hw * C;
    std::vector<double> mean(C, 0.0), amean(C, 0.0);
    for (long s = 0; s < hw; ++s)
      for (int c = 0; c < C; ++c) {
        mean[c] += xe[s * C + c];
        amean[c] += std::fabs(xe[s * C + c]);
      }
    for (int c = 0; c < C; ++c) {
      mean[c] = hw ? mean[c] / hw : 0.0;
      amean[c] = hw ? amean[c] / hw : 0.0;
    }
    std::vector<double> zs(K), errs(K);
    for (int k = 0; k < K; ++k) {
      double z = L.bp[k], a = std::fabs(L.bp[k]);
      for (int c = 0; c < C; ++c) {
        z += mean[c] * L.wp[static_cast<size_t>(c) * K + k];
        a += std::fabs(amean[c] * L.wp[static_cast<size_t>(c) * K + k]);
      }
      zs[k] = z;
      errs[k] = dot_err(hw + C, a);
    }
    set_gates(L, zs, errs, e, &R);
    if (L.quant) {
      reference_int8_conv_values(L, e, OH, OW, pt, pl, &R);
      continue;
    }
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow)
        for (int j = 0; j < K; ++j)
          for (int c = 0; c < bs; ++c) {
            double z = L.has_bias ? L.bias[static_cast<size_t>(j) * bs + c] : 0.0;
            double a = std::fabs(z);
            long n = 0;
            for_each_valid_tap(L, oh, ow, pt, pl, [&](int kh, int kw, size_t pos) {
              const float* xp = xe + pos * C;
              for (int ci = 0; ci < C; ++ci) {
                const double w =
                    L.kernel[((((static_cast<size_t>(j) * L.KH + kh) * L.KW + kw) * C + ci) * bs) +
                             c];
                z += static_cast<double>(xp[ci]) * w;
                a += std::fabs(static_cast<double>(xp[ci]) * w);
                ++n;
              }
            });
            const size_t at = (((static_cast<size_t>(e) * OH + oh) * OW + ow) * U) +
                              static_cast<size_t>(j) * bs + c;
            R.v[at] = {z, dot_err(n, a)};
          }
  }
  return R;
}

bool example_nonfinite(const Layer& L, int e) {
  const size_t n = L.x.size() / static_cast<size_t>(L.B);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(L.x[static_cast<size_t>(e) * n + i])) return true;
  return false;
}

std::string compare(const Layer& L, const Reference& R, const float* y, Stats* st) {
  const int K = L.K, bs = L.bs, U = L.units();
  size_t per_example = 1;
  for (size_t i = 1; i < R.shape.size(); ++i) per_example *= R.shape[i];
  const size_t positions = per_example / U;
  for (int e = 0; e < L.B; ++e) {
    if (example_nonfinite(L, e)) {
      for (size_t i = 0; i < per_example; ++i) {
        const float v = y[static_cast<size_t>(e) * per_example + i];
        if (!std::isnan(v)) {
          char b[160];
          snprintf(b, sizeof b, "example %d has a non-finite input but y[%zu]=%.9g, not NaN", e,
                   static_cast<size_t>(e) * per_example + i, v);
          return b;
        }
      }
      st->values_checked += static_cast<long>(per_example);
      continue;
    }
    for (int j = 0; j < K; ++j) {
      const uint8_t g = R.gate[static_cast<size_t>(e) * K + j];
      bool all_zero = true;
      std::string first_bad;
      for (size_t s = 0; s < positions && (first_bad.empty() || all_zero); ++s) {
        for (int c = 0; c < bs; ++c) {
          const size_t at =
              static_cast<size_t>(e) * per_example + s * U + static_cast<size_t>(j) * bs + c;
          const float v = y[at];
          if (v != 0.0f) all_zero = false;  // NaN counts as non-zero
          if (g == kOff) {
            if (v != 0.0f) {
              char b[160];
              snprintf(b, sizeof b, "example %d block %d is off but y[%zu]=%.9g", e, j, at, v);
              return b;
            }
          } else if (first_bad.empty()) {
            const size_t gi = static_cast<size_t>(e) * K + j;
            std::string why = L.scale_by_gate
                                  ? check_value(v, R.v[at], L.act, st, R.glo[gi], R.ghi[gi])
                                  : check_value(v, R.v[at], L.act, st);
            st->values_checked++;
            if (!why.empty()) {
              char b[64];
              snprintf(b, sizeof b, "example %d block %d y[%zu]: ", e, j, at);
              first_bad = b + why;
            }
          }
        }
      }
      if (g == kAmbiguous) {
        st->ambiguous_blocks++;
        if (all_zero) continue;  // kernel decided "off": fine
      }
      if (!first_bad.empty()) return first_bad;
    }
  }
  return "";
}

}  // namespace ccdrv
