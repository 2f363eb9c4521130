// Test / benchmark driver for the CondComp gated kernels, for aarch64 (run
// under qemu-user or on a phone / ARM board) and the host (ASan/UBSan).
//
// It links the portable kernels (tflite/ops/condcomp_kernels.c) and the TFLite
// glue (tflite/ops/condcomp_tflite_ops.c) and checks them against a scalar
// double-precision reference of docs/architecture.md written here,
// independently of the code under test:
//
//   condcomp_driver kernels N [--seed S]   random cases straight through the
//                                          kernel API (cc_gated_*_gate/_block)
//   condcomp_driver ops N [--seed S]       random cases through the TFLite glue
//                                          (Init/Prepare/Invoke/Free) driven by
//                                          a mock TfLiteContext: valid cases must
//                                          match the reference, invalid shapes,
//                                          types and (mutated) FlexBuffers
//                                          options must fail with ReportError
//   condcomp_driver model FILE [--reps R]  runs the gated layers of a Keras model
//                                          exported by export_layers.py through
//                                          the glue, compares with Keras' outputs
//   condcomp_driver bench dense D UNITS K ACTIVE BATCH REPS
//   condcomp_driver bench conv H W C FILTERS K ACTIVE BATCH REPS [KSIZE]
//   condcomp_driver info
//
// Options: --seed S, --only I (run case I alone), --progress FILE (the index of
// the running case is written there first, so a harness can name the case that
// crashed), --strict-nan (a NaN pre-activation that an activation turns into
// a number fails instead of being counted), --verbose.
//
// Exit status: 0 all good, 1 a mismatch / unexpected status, 2 usage error.
// The last line of `kernels` / `ops` is "N passed, N failed".

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "condcomp_kernels.h"
#include "condcomp_tflite_ops.h"
#include "flexbuf_writer.h"

namespace {

// ------------------------------------------------------------------ options

struct Options {
  uint64_t seed = 1;
  long only = -1;
  const char* progress = nullptr;
  bool strict_nan = false;
  bool verbose = false;
  int reps = 20;
};
Options g_opt;

// --------------------------------------------------------------------- rng

// splitmix64: the same stream on every platform and standard library.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  int range(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return uniform() < p; }
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[next() % v.size()];
  }
};

uint64_t case_seed(uint64_t seed, long i) {
  Rng r(seed * 0x100000001B3ULL + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL + 7);
  r.next();
  return r.next();
}

// -------------------------------------------------------------- reference

const char* kActNames[] = {"linear", "relu",     "relu6",      "sigmoid",      "tanh",
                           "elu",    "selu",     "softplus",   "softsign",     "silu",
                           "gelu",   "leaky_relu", "hard_sigmoid", "hard_silu", "mish",
                           "exponential"};
constexpr int kNumActs = 16;
static_assert(kNumActs == CC_ACT_COUNT, "activation list out of date");

double softplus_ref(double v) { return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); }

// Keras 3 (TensorFlow backend) activations in double precision, NaN in -> NaN out.
double act_ref(int a, double v) {
  if (std::isnan(v)) return v;
  switch (a) {
    case CC_ACT_LINEAR: return v;
    case CC_ACT_RELU: return v > 0 ? v : 0.0;
    case CC_ACT_RELU6: return v > 0 ? (v < 6 ? v : 6.0) : 0.0;
    case CC_ACT_SIGMOID: return 1.0 / (1.0 + std::exp(-v));
    case CC_ACT_TANH: return std::tanh(v);
    case CC_ACT_ELU: return v > 0 ? v : std::expm1(v);
    case CC_ACT_SELU:
      return 1.0507009873554804934193349852946 *
             (v > 0 ? v : 1.6732632423543772848170429916717 * std::expm1(v));
    case CC_ACT_SOFTPLUS: return softplus_ref(v);
    case CC_ACT_SOFTSIGN: return v / (1.0 + std::fabs(v));
    case CC_ACT_SILU: return v / (1.0 + std::exp(-v));
    case CC_ACT_GELU: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case CC_ACT_LEAKY_RELU: return v > 0 ? v : 0.2 * v;
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
    case CC_ACT_MISH: return v * std::tanh(softplus_ref(v));
    case CC_ACT_EXPONENTIAL: return std::exp(v);
  }
  return std::nan("");
}

// Activations whose kernel maps a NaN pre-activation to a number (Keras gives NaN).
bool nan_clamping_act(int a) {
  return a == CC_ACT_RELU || a == CC_ACT_RELU6 || a == CC_ACT_HARD_SIGMOID;
}

// A reference output: the pre-activation z (double) and the bound `err` on
// the float kernel's rounding error of z.
struct RefVal {
  double z;
  double err;
};

enum Gate { kOff = 0, kOn = 1, kAmbiguous = 2 };

// Decision sigmoid(z) > thr as the kernel rounds it (sigmoid in double, then
// to float), for every z in [z - err, z + err]: kOn/kOff when all agree.
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
double dot_err(long n, double abs_sum) { return (static_cast<double>(n) + 4.0) * 1.2e-7 * abs_sum + 1e-30; }

struct Stats {
  long cases = 0, passed = 0, failed = 0;
  long expected_errors = 0;   // invalid inputs rejected as they should be
  long ambiguous_blocks = 0;  // gate within rounding of the threshold
  long nan_deviation = 0;     // NaN pre-activation turned into a number
  long values_checked = 0;
  long mutated_ok = 0, mutated_err = 0;
  long int8_cases = 0;  // dynamic-range int8 layers among the cases
  long int8_conv_cases = 0;  // ... of which convolutions
  long int8_static_cases = 0;  // ... with static activation scales
};

// Checks one output value y against the reference. Returns "" or a reason.
// scale_by_gate: the block's gate value lies in [glo, ghi] (1, 1: unscaled).
std::string check_value(float y, const RefVal& r, int act, Stats* st, double glo = 1.0,
                        double ghi = 1.0) {
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
                     5e-7 * (1.0 + std::min(std::fabs(z), 1e3)) * (act == CC_ACT_GELU ? 1.0 : 0.0) + 1e-30;
  lo -= tol;
  hi += tol;
  const double fmax = std::numeric_limits<float>::max();
  // The unscaled value overflows float: times the gate value it stays
  // +-inf, or is NaN for a gate value of 0.
  if (scaled && (hi >= fmax || lo <= -fmax) &&
      (std::isinf(y) || (std::isnan(y) && glo == 0.0)))
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

// ------------------------------------------------------------ layer specs

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
  int top_k = 0;  // 0: threshold rule
  bool scale_by_gate = false;  // computed blocks times sigmoid(logit)
  bool has_bias = true;
  std::vector<float> x, kernel, bias, wp, bp;  // kernel block-major
  // Dynamic-range int8 (quantize_int8): kernel_q[K][rows][bs] * kernel_scale[K*bs].
  bool quant = false;
  std::vector<int8_t> kernel_q;
  std::vector<float> kernel_scale;
  // Static activation scales (static_scales), one per input block; empty:
  // per-example scales.
  std::vector<float> input_scale;
  std::vector<float> y_expected;               // model mode: Keras output
  std::string name;

  int ibs() const { return ibs_opt == 0 ? D : ibs_opt; }
  int units() const { return K * bs; }
};

// Rows of the block-major kernel [K][rows][bs]: D, or KH*KW*C for a conv.
int kernel_rows(const Layer& L) { return L.op == 0 ? L.D : L.KH * L.KW * L.D; }

// TF output size and leading pad (independent of cc_conv_output_size).
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

struct Reference {
  std::vector<RefVal> v;  // per output element (before the gate value)
  std::vector<uint8_t> gate;  // per (example, block): Gate
  std::vector<double> glo, ghi;  // scale_by_gate: per (example, block) gate value bounds
  std::vector<int> shape;
};

// Values as the int8 op quantizes them (condcomp_kernels.h): q =
// clamp(round-half-even(x * k), -127, 127) in double.
int quantize_value_ref(float x, double k) {
  const double v = std::nearbyint(static_cast<double>(x) * k);
  return static_cast<int>(std::max(-127.0, std::min(127.0, v)));
}

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
        acc += static_cast<long long>(xq[i][r]) *
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
      for (int c = i * ibs; c < (i + 1) * ibs; ++c) xq[p * C + c] = quantize_value_ref(xe[p * C + c], k);
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
void set_gates(const Layer& L, const std::vector<double>& z, const std::vector<double>& err,
               int e, Reference* R) {
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

Reference reference(const Layer& L) {
  Reference R;
  const int K = L.K, bs = L.bs, U = L.units();
  if (L.op == 0) {
    R.shape = {L.B, U};
    R.v.resize(static_cast<size_t>(L.B) * U);
    R.gate.resize(static_cast<size_t>(L.B) * K);
    for (int e = 0; e < L.B; ++e) {
      const float* x = L.x.data() + static_cast<size_t>(e) * L.D;
      std::vector<double> zs(K), errs(K);
      for (int k = 0; k < K; ++k) {
        double z = L.bp[k], a = std::fabs(L.bp[k]);
        for (int d = 0; d < L.D; ++d) {
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
                    L.kernel[((((static_cast<size_t>(j) * L.KH + kh) * L.KW + kw) * C + ci) * bs) + c];
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

// Compares kernel output y (shape R.shape) with the reference. Returns "" or
// the first mismatch.
// True iff example e's input holds a NaN or +-Inf: then its whole output row
// must be NaN (keras_condcomp.layers.nonfinite_rows_to_nan).
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
          const size_t at = static_cast<size_t>(e) * per_example + s * U + static_cast<size_t>(j) * bs + c;
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

// ------------------------------------------------------------- generation

void fill_normal(Rng& r, std::vector<float>& v, size_t n, double scale) {
  v.resize(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(r.normal() * scale);
}

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

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
  // pixels inside the padding), with zmm-wide blocks (16, 32 filters).
  const bool wide = conv && r.chance(0.15);
  if (wide) {
    L.W = r.range(10, 20);
    L.bs = r.chance(0.5) ? 16 : 32;
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
  const size_t nx = conv ? static_cast<size_t>(L.B) * L.H * L.W * L.D : static_cast<size_t>(L.B) * L.D;
  fill_normal(r, L.x, nx, 1.0);
  // Zero input blocks (what a previous gated layer leaves), per example.
  const int ibs = L.ibs(), nin = L.D / ibs;
  const size_t per_ex = conv ? static_cast<size_t>(L.H) * L.W : 1;
  for (int e = 0; e < L.B; ++e) {
    const double pz = r.chance(0.5) ? r.uniform() : 0.0;
    for (int i = 0; i < nin; ++i) {
      if (!r.chance(pz)) continue;
      for (size_t s = 0; s < per_ex; ++s)
        for (int c = i * ibs; c < (i + 1) * ibs; ++c)
          L.x[(static_cast<size_t>(e) * per_ex + s) * L.D + c] = r.chance(0.5) ? 0.0f : -0.0f;
    }
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
  if (L.has_bias) fill_normal(r, L.bias, static_cast<size_t>(L.units()), 0.3);
  fill_normal(r, L.wp, static_cast<size_t>(L.D) * L.K, (r.chance(0.2) ? 3.0 : 1.0) / std::sqrt(L.D));
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
      m = std::max(m, std::fabs(static_cast<double>(L->kernel[(static_cast<size_t>(j) * rows + d) * bs + c])));
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

// ------------------------------------------------ direct kernel invocation

// An int8 layer's packed weights and activation scratch (exact-size heap
// blocks, for ASan), bound into a cc_gated_dense / cc_gated_conv2d.
struct Int8Inputs {
  const Layer& L;
  std::vector<int8_t> packed, xq;
  std::vector<float> xq_scale;
  explicit Int8Inputs(const Layer& layer) : L(layer) {
    if (!L.quant) return;
    const int nin = L.D / L.ibs(), padded = (L.ibs() + 3) / 4 * 4, rows = kernel_rows(L);
    const size_t positions = L.op == 0 ? 1 : static_cast<size_t>(L.H) * L.W;
    packed.resize(cc_q8_packed_size(L.K, rows, L.bs, L.ibs()));
    cc_q8_pack(L.kernel_q.data(), L.K, rows, L.bs, L.ibs(), packed.data());
    xq.resize(static_cast<size_t>(L.B) * positions * nin * padded);
    xq_scale.resize(static_cast<size_t>(L.B) * nin);
  }
  template <typename P>
  void bind(P* p) {
    if (!L.quant) return;
    p->kernel_bm = nullptr;
    p->kernel_q = packed.data();
    p->kernel_scale = L.kernel_scale.data();
    p->xq = xq.data();
    p->xq_scale = xq_scale.data();
    p->input_scale = L.input_scale.empty() ? nullptr : L.input_scale.data();
  }
};

// Runs the portable kernels on L (no TFLite). Output into y (sized here).
void run_kernels(const Layer& L, std::vector<float>* y, uint64_t* macs_out) {
  const int K = L.K, U = L.units();
  uint64_t macs = 0;
  if (L.op == 0) {
    cc_gated_dense p = {};  // zero: float kernel (kernel_q NULL)
    p.batch = L.B;
    p.in_dim = L.D;
    p.num_blocks = K;
    p.block_size = L.bs;
    p.in_block_size = L.ibs();
    p.activation = L.act;
    p.threshold = L.thr;
    p.top_k = L.top_k;
    std::vector<float> gate_scale(static_cast<size_t>(L.B) * K);
    p.gate_scale = L.scale_by_gate ? gate_scale.data() : nullptr;
    y->assign(static_cast<size_t>(L.B) * U, std::nanf(""));
    std::vector<uint8_t> in_active(static_cast<size_t>(L.B) * (L.D / L.ibs()) + 0);
    std::vector<uint8_t> out_mask(static_cast<size_t>(L.B) * K);
    std::vector<float> logits(static_cast<size_t>(CC_GATE_GROUP) * K);
    std::vector<int> ex(2 * static_cast<size_t>(L.B) + 0);
    p.x = L.x.data();
    p.kernel_bm = L.kernel.data();
    p.bias = L.has_bias ? L.bias.data() : nullptr;
    p.policy_kernel = L.wp.data();
    p.policy_bias = L.bp.data();
    p.y = y->data();
    p.in_active = in_active.data();
    p.out_mask = out_mask.data();
    Int8Inputs q8(L);
    q8.bind(&p);
    if (L.B > 0) {
      cc_gated_dense_gate(&p, 0, L.B, logits.data());
      for (int j = 0; j < K; ++j) macs += cc_gated_dense_block(&p, j, ex.data());
    }
  } else {
    int OH, OW, pt, pl;
    conv_geometry(L.H, L.KH, L.sh, L.dh, L.same, &OH, &pt);
    conv_geometry(L.W, L.KW, L.sw, L.dw, L.same, &OW, &pl);
    cc_gated_conv2d p = {};  // zero: float kernel (kernel_q NULL)
    p.batch = L.B;
    p.in_h = L.H;
    p.in_w = L.W;
    p.in_c = L.D;
    p.out_h = OH;
    p.out_w = OW;
    p.kernel_h = L.KH;
    p.kernel_w = L.KW;
    p.stride_h = L.sh;
    p.stride_w = L.sw;
    p.dilation_h = L.dh;
    p.dilation_w = L.dw;
    p.pad_top = pt;
    p.pad_left = pl;
    p.num_blocks = K;
    p.block_size = L.bs;
    p.in_block_size = L.ibs();
    p.activation = L.act;
    p.threshold = L.thr;
    p.top_k = L.top_k;
    std::vector<float> gate_scale(static_cast<size_t>(L.B) * K);
    p.gate_scale = L.scale_by_gate ? gate_scale.data() : nullptr;
    y->assign(static_cast<size_t>(L.B) * OH * OW * U, std::nanf(""));
    std::vector<uint8_t> in_active(static_cast<size_t>(L.B) * (L.D / L.ibs()));
    std::vector<uint8_t> out_mask(static_cast<size_t>(L.B) * K);
    std::vector<float> scratch(static_cast<size_t>(L.D) + K);
    p.x = L.x.data();
    p.kernel_bm = L.kernel.data();
    p.bias = L.has_bias ? L.bias.data() : nullptr;
    p.policy_kernel = L.wp.data();
    p.policy_bias = L.bp.data();
    p.y = y->data();
    p.in_active = in_active.data();
    p.out_mask = out_mask.data();
    Int8Inputs q8(L);
    q8.bind(&p);
    if (L.B > 0 && OH > 0 && OW > 0) {
      cc_gated_conv2d_gate(&p, 0, L.B, scratch.data());
      for (int j = 0; j < K; ++j) macs += cc_gated_conv2d_block(&p, j);
    }
  }
  if (macs_out) *macs_out = macs;
}

// ------------------------------------------------------- mock TFLite runtime

// A TfLiteContext with just what the CondComp glue uses, over tensors whose
// buffers are separate exact-size heap blocks (so ASan sees any overrun).
struct MockRuntime {
  TfLiteContext ctx;  // first member: ReportError casts back
  std::vector<TfLiteTensor> tensors;
  std::string error;
  int resize_calls = 0;

  explicit MockRuntime(int n) : tensors(n) {
    std::memset(&ctx, 0, sizeof ctx);
    std::memset(tensors.data(), 0, sizeof(TfLiteTensor) * n);
    ctx.tensors_size = static_cast<size_t>(n);
    ctx.tensors = tensors.data();
    ctx.ReportError = &MockRuntime::ReportError;
    ctx.ResizeTensor = &MockRuntime::ResizeTensor;
    ctx.GetTensor = &MockRuntime::GetTensor;
    ctx.recommended_num_threads = 1;
  }
  ~MockRuntime() {
    for (TfLiteTensor& t : tensors) {
      std::free(t.dims);
      std::free(t.data);
    }
  }
  MockRuntime(const MockRuntime&) = delete;
  MockRuntime& operator=(const MockRuntime&) = delete;

  static MockRuntime* self(TfLiteContext* c) { return reinterpret_cast<MockRuntime*>(c); }
  static void ReportError(TfLiteContext* c, const char* fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    self(c)->error = b;
  }
  static TfLiteStatus ResizeTensor(TfLiteContext* c, TfLiteTensor* t, TfLiteIntArray* dims) {
    self(c)->resize_calls++;
    std::free(t->dims);
    t->dims = dims;  // takes ownership, like TFLite
    std::free(t->data);
    t->data = nullptr;  // (re)allocated by Allocate(), like the arena
    set_bytes(t);
    return kTfLiteOk;
  }
  static TfLiteStatus ResizeTensorExplicit(TfLiteContext* c, TfLiteTensor* t, int n,
                                           const int* shape) {
    TfLiteIntArray* a =
        static_cast<TfLiteIntArray*>(std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (n > 0 ? n : 1)));
    a->size = n;
    if (n > 0) std::memcpy(a->data, shape, sizeof(int) * n);
    return ResizeTensor(c, t, a);
  }
  static TfLiteTensor* GetTensor(const TfLiteContext* c, int i) {
    MockRuntime* m = self(const_cast<TfLiteContext*>(c));
    if (i < 0 || static_cast<size_t>(i) >= m->tensors.size()) return nullptr;
    return &m->tensors[i];
  }

  static int64_t elements(const TfLiteTensor& t) {
    if (!t.dims) return 0;
    int64_t n = 1;
    for (int i = 0; i < t.dims->size; ++i) {
      if (t.dims->data[i] < 0) return -1;
      if (t.dims->data[i] && n > (int64_t{1} << 40) / t.dims->data[i]) return -1;
      n *= t.dims->data[i];
    }
    return n;
  }
  void SetShape(int i, const std::vector<int>& shape, TfLiteType type = kTfLiteFloat32) {
    TfLiteTensor& t = tensors[i];
    std::free(t.dims);
    t.dims = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (shape.empty() ? 1 : shape.size())));
    t.dims->size = static_cast<int>(shape.size());
    for (size_t k = 0; k < shape.size(); ++k) t.dims->data[k] = shape[k];
    t.type = type;
    std::free(t.data);
    t.data = nullptr;
    set_bytes(&t);
  }
  static size_t elem_size(TfLiteType type) {
    return type == kTfLiteFloat64 || type == kTfLiteInt64 ? 8
           : type == kTfLiteInt16 || type == kTfLiteFloat16 ? 2
           : type == kTfLiteUInt8 || type == kTfLiteInt8 || type == kTfLiteBool ? 1
                                                                                : 4;
  }
  // Like TFLite: `bytes` follows the shape as soon as it is set (data comes
  // later, from the arena); 0 when the shape has no valid size.
  static void set_bytes(TfLiteTensor* t) {
    const int64_t n = elements(*t);
    t->bytes = n < 0 ? 0 : static_cast<size_t>(n) * elem_size(t->type);
  }
  // Gives tensor i an exact-size buffer (nullptr for 0 bytes when null_empty).
  bool Allocate(int i, bool null_empty) {
    TfLiteTensor& t = tensors[i];
    const int64_t n = elements(t);
    if (n < 0 || n > (int64_t{1} << 26)) return false;  // "arena allocation failed"
    std::free(t.data);
    set_bytes(&t);
    t.data = (t.bytes == 0 && null_empty) ? nullptr : std::malloc(t.bytes ? t.bytes : 1);
    if (t.data) std::memset(t.data, 0xFF, t.bytes);  // NaN garbage: must be overwritten
    t.allocation_type = kTfLiteArenaRw;
    return true;
  }
  template <class T>
  void Fill(int i, const std::vector<T>& v) {
    if (tensors[i].data && !v.empty())
      std::memcpy(tensors[i].data, v.data(), std::min(tensors[i].bytes, v.size() * sizeof(T)));
  }
};

TfLiteIntArray* int_array(const std::vector<int>& v) {
  TfLiteIntArray* a =
      static_cast<TfLiteIntArray*>(std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (v.empty() ? 1 : v.size())));
  a->size = static_cast<int>(v.size());
  for (size_t i = 0; i < v.size(); ++i) a->data[i] = v[i];
  return a;
}

std::vector<ccfx::Entry> layer_options(const Layer& L) {
  std::vector<ccfx::Entry> o;
  o.push_back({"activation", ccfx::Str(kActNames[L.act])});
  o.push_back({"threshold", ccfx::Float(L.thr)});
  o.push_back({"input_block_size", ccfx::Int(L.ibs_opt)});
  if (L.top_k > 0) o.push_back({"top_k", ccfx::Int(L.top_k)});
  if (L.scale_by_gate) o.push_back({"scale_by_gate", ccfx::Int(1)});
  if (L.op == 1) {
    o.push_back({"padding", ccfx::Str(L.same ? "same" : "valid")});
    o.push_back({"stride_h", ccfx::Int(L.sh)});
    o.push_back({"stride_w", ccfx::Int(L.sw)});
    o.push_back({"dilation_h", ccfx::Int(L.dh)});
    o.push_back({"dilation_w", ccfx::Int(L.dw)});
  }
  return o;
}

std::vector<int> x_shape(const Layer& L) {
  return L.op == 0 ? std::vector<int>{L.B, L.D} : std::vector<int>{L.B, L.H, L.W, L.D};
}
std::vector<int> kernel_shape(const Layer& L) {
  return L.op == 0 ? std::vector<int>{L.K, L.D, L.bs} : std::vector<int>{L.K, L.KH, L.KW, L.D, L.bs};
}

// One run of a node through Init/Prepare/(Invoke)/Free.
struct OpRun {
  bool prepared = false, invoked = false;
  TfLiteStatus prepare_status = kTfLiteError, invoke_status = kTfLiteError;
  std::string error;
  std::vector<int> out_shape;
  std::vector<float> y;
};

// Tensor indices: 0 x, 1 kernel, 2 bias, 3 policy kernel, 4 policy bias, 5 output.
struct NodeSetup {
  std::vector<int> inputs = {0, 1, 2, 3, 4};
  std::vector<int> outputs = {5};
  std::vector<std::vector<int>> shapes;  // 6 shapes
  std::vector<TfLiteType> types = std::vector<TfLiteType>(6, kTfLiteFloat32);
  std::vector<uint8_t> options;
  int threads = 1;
  // $CONDCOMP_PARALLEL_MIN_BYTES for the op: "0" splits even tiny work
  // between the threads (the parallel path), "" keeps the default threshold.
  const char* parallel_min_bytes = "";
  bool explicit_resize = false;
  bool null_empty = false;
  std::vector<int> reshape_x;  // second Prepare/Invoke with another x shape
  std::vector<float> input_scale;  // tensor 7's values (the layer's, or a defect's)
};

OpRun run_op(const Layer& L, const NodeSetup& S, const Layer* L2 = nullptr) {
  OpRun out;
  const TfLiteRegistration* reg =
      L.op == 0 ? CondCompGatedDenseRegistration() : CondCompGatedConv2DRegistration();
  // Tensors 0-4 the inputs, 5 the output, 6 kernel_scale (int8 kernel only),
  // 7 input_scale (static activation scales only).
  const int n_tensors = static_cast<int>(S.shapes.size());
  MockRuntime rt(n_tensors);
  if (S.explicit_resize) rt.ctx.ResizeTensorExplicit = &MockRuntime::ResizeTensorExplicit;
  rt.ctx.recommended_num_threads = S.threads;
  setenv("CONDCOMP_PARALLEL_MIN_BYTES", S.parallel_min_bytes, 1);  // read in Prepare
  for (int i = 0; i < n_tensors; ++i) rt.SetShape(i, S.shapes[i], S.types[i]);
  // Constants have data before Prepare; x and the output get theirs after.
  const std::vector<float>* consts[8] = {nullptr, &L.kernel, &L.bias, &L.wp, &L.bp, nullptr,
                                         &L.kernel_scale, &S.input_scale};
  for (int i = 1; i < n_tensors; ++i) {
    if (i == 5) continue;
    if (!rt.Allocate(i, S.null_empty)) return out;
    rt.tensors[i].allocation_type = kTfLiteMmapRo;
    if (i == 1 && S.types[1] == kTfLiteInt8) {
      rt.Fill(i, L.kernel_q);
    } else {
      rt.Fill(i, *consts[i]);
    }
  }
  TfLiteNode node;
  std::memset(&node, 0, sizeof node);
  node.inputs = int_array(S.inputs);
  node.outputs = int_array(S.outputs);
  node.temporaries = int_array({});
  node.intermediates = int_array({});
  // The options live in their own exact-size block.
  std::unique_ptr<uint8_t[]> opt(new uint8_t[S.options.size() ? S.options.size() : 1]);
  if (!S.options.empty()) std::memcpy(opt.get(), S.options.data(), S.options.size());
  node.custom_initial_data = S.options.empty() ? nullptr : opt.get();
  node.custom_initial_data_size = static_cast<int>(S.options.size());
  void* user = reg->init(&rt.ctx, reinterpret_cast<const char*>(node.custom_initial_data),
                         S.options.size());
  node.user_data = user;

  for (int pass = 0; pass < (L2 ? 2 : 1); ++pass) {
    const Layer& cur = pass == 0 ? L : *L2;
    if (pass == 1) {
      rt.SetShape(0, S.reshape_x);
      out.y.clear();
    }
    rt.error.clear();
    out.prepare_status = reg->prepare(&rt.ctx, &node);
    out.prepared = out.prepare_status == kTfLiteOk;
    out.error = rt.error;
    if (!out.prepared) break;
    // Arena allocation of x and the output.
    const TfLiteTensor& o = rt.tensors[5];
    out.out_shape.clear();
    if (o.dims)
      for (int k = 0; k < o.dims->size; ++k) out.out_shape.push_back(o.dims->data[k]);
    if (!rt.Allocate(0, S.null_empty) || !rt.Allocate(5, S.null_empty)) {
      out.invoked = false;
      break;
    }
    rt.Fill(0, cur.x);
    rt.error.clear();
    out.invoke_status = reg->invoke(&rt.ctx, &node);
    out.invoked = true;
    out.error = rt.error;
    if (out.invoke_status != kTfLiteOk) break;
    const int64_t n = MockRuntime::elements(o);
    if (n > 0 && o.data) out.y.assign(static_cast<float*>(o.data), static_cast<float*>(o.data) + n);
  }
  reg->free(&rt.ctx, user);
  std::free(node.inputs);
  std::free(node.outputs);
  std::free(node.temporaries);
  std::free(node.intermediates);
  return out;
}

NodeSetup valid_setup(const Layer& L, Rng& r) {
  NodeSetup S;
  S.shapes = {x_shape(L), kernel_shape(L), {L.units()}, {L.D, L.K}, {L.K}, {}};
  if (!L.has_bias) S.inputs[2] = -1;
  if (L.quant) {  // int8 kernel plus a 6th input, kernel_scale (tensor 6)
    S.types[1] = kTfLiteInt8;
    S.shapes.push_back({L.units()});
    S.types.push_back(kTfLiteFloat32);
    S.inputs.push_back(6);
  }
  if (!L.input_scale.empty()) {  // static activation scales: a 7th input (tensor 7)
    S.shapes.push_back({L.D / L.ibs()});
    S.types.push_back(kTfLiteFloat32);
    S.inputs.push_back(7);
    S.input_scale = L.input_scale;
  }
  std::vector<ccfx::Entry> o = layer_options(L);
  // Indirect scalars and narrower maps are valid encodings too.
  for (auto& e : o)
    if (e.value.kind != ccfx::Value::kS && r.chance(0.2)) e.value.indirect = true;
  static const std::vector<size_t> kWidths = {1, 2, 4, 8, 8, 8};
  if (!ccfx::BuildMap(o, r.pick(kWidths), true, &S.options)) S.options = ccfx::BuildMap(o);
  S.threads = r.chance(0.5) ? 1 : r.range(-1, 4);
  S.parallel_min_bytes = r.chance(0.5) ? "0" : "";
  S.explicit_resize = r.chance(0.5);
  S.null_empty = r.chance(0.5);
  return S;
}

// ------------------------------------------------------------ case runners

void progress(long i) {
  if (!g_opt.progress) return;
  FILE* f = std::fopen(g_opt.progress, "w");
  if (!f) return;
  std::fprintf(f, "%ld %" PRIu64 "\n", i, g_opt.seed);
  std::fclose(f);
}

void fail(Stats* st, long i, const char* what, const std::string& why, const Layer& L) {
  st->failed++;
  std::fprintf(stderr,
               "FAIL case %ld (seed %" PRIu64 ") %s: %s\n  layer op=%s B=%d D=%d H=%d W=%d K=%d bs=%d "
               "k=%dx%d s=%dx%d d=%dx%d %s ibs=%d act=%s thr=%.9g top_k=%d scale_by_gate=%d bias=%d "
               "int8=%d\n",
               i, g_opt.seed, what, why.c_str(), L.op ? "conv" : "dense", L.B, L.D, L.H, L.W, L.K,
               L.bs, L.KH, L.KW, L.sh, L.sw, L.dh, L.dw, L.same ? "same" : "valid", L.ibs_opt,
               kActNames[L.act], L.thr, L.top_k, L.scale_by_gate ? 1 : 0, L.has_bias ? 1 : 0,
               L.quant ? 1 : 0);
}

bool kernel_case(long i, Stats* st) {
  Rng r(case_seed(g_opt.seed, i));
  const bool conv = r.chance(0.5);
  const bool special = r.chance(0.15);
  Layer L = random_layer(r, conv, special);
  if (r.chance(0.4)) {
    quantize_int8(&L);
    st->int8_cases++;
    st->int8_conv_cases += conv;
    if (r.chance(0.5)) {
      static_scales(&L, r);
      st->int8_static_cases++;
    }
  }
  std::vector<float> y;
  run_kernels(L, &y, nullptr);
  Reference R = reference(L);
  std::string why = compare(L, R, y.data(), st);
  st->cases++;
  if (!why.empty()) {
    fail(st, i, "kernel output", why, L);
    return false;
  }
  st->passed++;
  return true;
}

// Invalid variants of a valid setup. Each must make Prepare fail.
enum Defect {
  kNone = 0,
  kBadActivation,
  kThresholdRange,
  kThresholdNaN,
  kIbsNotDividing,
  kIbsNegative,
  kMissingKey,
  kUnknownKey,
  kWrongValueType,
  kBadPadding,
  kBadStride,
  kRankX,
  kRankKernel,
  kDimMismatch,
  kBiasLength,
  kPolicyShape,
  kPolicyBiasLength,
  kNonFloat,
  kInputCount,
  kOutputCount,
  kBadIndex,
  kZeroFeatures,
  kNegativeDim,
  kEmptyOptions,
  kHugeX,
  kBadInputScale,
  kTopKRange,
  kScaleByGateRange,
  kNumDefects
};

const char* kDefectNames[kNumDefects] = {
    "none", "bad activation", "threshold out of [0,1]", "threshold NaN", "input_block_size not dividing",
    "input_block_size negative", "missing option", "unknown option", "wrong option type",
    "bad padding", "bad stride/dilation", "x rank", "kernel rank", "kernel/x dim mismatch",
    "bias length", "policy kernel shape", "policy bias length", "non-float tensor", "input count",
    "output count", "bad tensor index", "zero features", "negative dim", "empty options",
    "huge x shape", "input_scale zero/negative/NaN/Inf or wrong length",
    "top_k negative or above num_blocks", "scale_by_gate not 0 or 1"};

// Applies defect d to S (and maybe L's options); returns false if it does not
// apply to this layer.
bool apply_defect(int d, const Layer& L, NodeSetup* S, Rng& r) {
  std::vector<ccfx::Entry> o = layer_options(L);
  auto set = [&](const char* key, ccfx::Value v) {
    for (auto& e : o)
      if (e.key == key) e.value = v;
  };
  // An optional option: replaced if the layer has it, else added.
  auto set_or_add = [&](const char* key, ccfx::Value v) {
    for (auto& e : o)
      if (e.key == key) {
        e.value = v;
        return;
      }
    o.push_back({key, v});
  };
  bool rebuild = false;
  switch (d) {
    case kBadActivation: {
      static const std::vector<std::string> bad = {"", "Relu", "relu ", "softmax", "linearx", "gelu_approx",
                                                   std::string("relu\0x", 6), "leaky_relu(0.1)"};
      set("activation", ccfx::Str(r.pick(bad)));
      rebuild = true;
      break;
    }
    case kThresholdRange:
      set("threshold", ccfx::Float(r.chance(0.5) ? -0.01 - r.uniform() * 10 : 1.0001 + r.uniform() * 1e6));
      rebuild = true;
      break;
    case kThresholdNaN:
      set("threshold", ccfx::Float(r.chance(0.5) ? std::nan("") : std::numeric_limits<double>::infinity()));
      rebuild = true;
      break;
    case kIbsNotDividing: {
      int v = 0;
      for (int t = 0; t < 20 && v == 0; ++t) {
        int c = r.range(2, L.D + 5);
        if (L.D % c != 0) v = c;
      }
      if (v == 0) return false;
      set("input_block_size", ccfx::Int(v));
      rebuild = true;
      break;
    }
    case kIbsNegative:
      set("input_block_size", ccfx::Int(r.chance(0.5) ? -1 : -(int64_t{1} << 40)));
      rebuild = true;
      break;
    case kTopKRange:
      set_or_add("top_k", ccfx::Int(r.chance(0.5) ? L.K + r.range(1, 5) : -r.range(1, 3)));
      rebuild = true;
      break;
    case kScaleByGateRange:
      set_or_add("scale_by_gate", ccfx::Int(r.chance(0.5) ? r.range(2, 9) : -r.range(1, 3)));
      rebuild = true;
      break;
    case kMissingKey: {
      const size_t k = r.next() % o.size();
      // input_block_size could be optional in the future; top_k is (absent: threshold rule)
      if (o[k].key == "input_block_size" || o[k].key == "top_k" || o[k].key == "scale_by_gate")
        return false;
      o.erase(o.begin() + static_cast<long>(k));
      rebuild = true;
      break;
    }
    case kUnknownKey:
      o.push_back({r.chance(0.5) ? "groups" : "use_bias", ccfx::Int(1)});
      rebuild = true;
      break;
    case kWrongValueType: {
      const size_t k = r.next() % o.size();
      if (o[k].value.kind == ccfx::Value::kS)
        o[k].value = ccfx::Int(3);
      else
        o[k].value = ccfx::Str("3");
      rebuild = true;
      break;
    }
    case kBadPadding:
      if (L.op != 1) return false;
      set("padding", ccfx::Str(r.chance(0.5) ? "SAME" : "full"));
      rebuild = true;
      break;
    case kBadStride: {
      if (L.op != 1) return false;
      static const char* keys[] = {"stride_h", "stride_w", "dilation_h", "dilation_w"};
      set(keys[r.next() % 4], ccfx::Int(r.chance(0.5) ? 0 : (r.chance(0.5) ? -3 : (int64_t{1} << 33))));
      rebuild = true;
      break;
    }
    case kRankX: {
      std::vector<int> s = S->shapes[0];
      if (r.chance(0.5)) s.push_back(1); else s.pop_back();
      S->shapes[0] = s;
      break;
    }
    case kRankKernel: {
      std::vector<int> s = S->shapes[1];
      if (r.chance(0.5)) s.insert(s.begin(), 1); else s.erase(s.begin());
      S->shapes[1] = s;
      break;
    }
    case kDimMismatch:
      S->shapes[1][L.op == 0 ? 1 : 3] += r.range(1, 3);
      break;
    case kBiasLength:
      if (S->inputs[2] < 0) return false;
      S->shapes[2] = r.chance(0.5) ? std::vector<int>{L.units() + 1} : std::vector<int>{1, L.units()};
      break;
    case kPolicyShape:
      S->shapes[3] = r.chance(0.5) ? std::vector<int>{L.K, L.D} : std::vector<int>{L.D, L.K + 1};
      if (L.K == L.D && S->shapes[3][0] == L.K && S->shapes[3][1] == L.D) S->shapes[3] = {L.D + 1, L.K};
      break;
    case kPolicyBiasLength:
      S->shapes[4] = {L.K + r.range(1, 3)};
      break;
    case kNonFloat: {
      static const std::vector<TfLiteType> types = {kTfLiteInt8, kTfLiteUInt8, kTfLiteInt32, kTfLiteFloat16,
                                                    kTfLiteFloat64, kTfLiteInt64, kTfLiteBool};
      int k = r.range(0, 4);
      if (k == 2 && S->inputs[2] < 0) k = 0;
      S->types[k] = r.pick(types);
      if (S->types[k] == kTfLiteInt8 && k == 1 && L.quant) S->types[k] = kTfLiteFloat32;
      break;
    }
    case kInputCount:
      // 7 -> 6 inputs is a valid op (per-example scales): add one instead.
      if (r.chance(0.5) && L.input_scale.empty()) S->inputs.pop_back(); else S->inputs.push_back(0);
      break;
    case kOutputCount:
      if (r.chance(0.5)) S->outputs.clear(); else S->outputs.push_back(0);
      break;
    case kBadIndex: {
      int k = r.range(0, 4);
      if (k == 2) k = 1;  // -1 is a valid "no bias"
      S->inputs[k] = r.chance(0.5) ? 6 + r.range(0, 1000) : -2 - r.range(0, 5);
      break;
    }
    case kZeroFeatures:
      if (L.op == 0) S->shapes[0][1] = 0; else S->shapes[0][3] = 0;
      break;
    case kNegativeDim:  // x is not allocated before Prepare, so any shape can reach it
      S->shapes[0][r.range(0, static_cast<int>(S->shapes[0].size()) - 1)] = -r.range(1, 5);
      break;
    case kHugeX: {
      // x's element count stays under 2^40 (a shape TFLite accepts and the op
      // sees in Prepare before any arena allocation), but the output would
      // have more than INT_MAX elements: Prepare must refuse it.
      std::vector<int>& s = S->shapes[0];
      if (L.op == 0) {
        if (L.units() < 4 || L.D > 1024) return false;
        s[0] = 1 << 30;
      } else {
        if (L.units() < 16) return false;
        s[0] = 1 << 12;
        s[1] = 1 << 12;
        s[2] = 1 << 9;
      }
      break;
    }
    case kEmptyOptions:
      S->options.clear();
      break;
    case kBadInputScale: {
      if (L.input_scale.empty()) return false;
      if (r.chance(0.25)) {
        S->shapes[7] = {static_cast<int>(L.input_scale.size()) + (r.chance(0.5) ? 1 : -1)};
        if (S->shapes[7][0] == 0 || r.chance(0.3)) S->shapes[7] = {1, static_cast<int>(L.input_scale.size())};
        break;
      }
      static const std::vector<float> bad = {0.0f, -0.0f, -1.0f, std::nanf(""),
                                             std::numeric_limits<float>::infinity(),
                                             -std::numeric_limits<float>::denorm_min()};
      S->input_scale[r.next() % S->input_scale.size()] = r.pick(bad);
      break;
    }
    default:
      return false;
  }
  if (rebuild) S->options = ccfx::BuildMap(o);
  return true;
}

// Random byte-level damage to a valid options buffer.
void mutate(std::vector<uint8_t>* b, Rng& r) {
  const int kind = r.range(0, 4);
  switch (kind) {
    case 0:  // random bytes
    {
      const size_t n = r.range(0, 64);
      b->resize(n);
      for (auto& c : *b) c = static_cast<uint8_t>(r.next());
      break;
    }
    case 1:  // truncate
      if (!b->empty()) b->resize(r.next() % b->size());
      break;
    case 2:  // flip bytes
    {
      const int n = r.range(1, 4);
      for (int t = 0; t < n && !b->empty(); ++t) (*b)[r.next() % b->size()] ^= static_cast<uint8_t>(1 + r.next() % 255);
      break;
    }
    case 3:  // damage the tail (root offset / type / width)
      for (size_t t = 0; t < 3 && t < b->size(); ++t)
        if (r.chance(0.6)) (*b)[b->size() - 1 - t] = static_cast<uint8_t>(r.next());
      break;
    default:  // prepend / append garbage
      if (r.chance(0.5))
        b->insert(b->begin(), static_cast<size_t>(r.range(1, 9)), static_cast<uint8_t>(r.next()));
      else
        b->push_back(static_cast<uint8_t>(r.next()));
      break;
  }
}

bool op_case(long i, Stats* st) {
  Rng r(case_seed(g_opt.seed, i) ^ 0x5555);
  const bool conv = r.chance(0.5);
  const double u = r.uniform();
  const bool special = u < 0.12;
  Layer L = random_layer(r, conv, special);
  // 55% valid, 35% one defect, 10% mutated options; a third of the valid and
  // defective layers int8, half of those with static activation scales.
  const double kind = r.uniform();
  if (kind < 0.90 && r.chance(0.35)) {
    quantize_int8(&L);
    st->int8_cases++;
    st->int8_conv_cases += conv;
    if (r.chance(0.5)) {
      static_scales(&L, r);
      st->int8_static_cases++;
    }
  }
  NodeSetup S = valid_setup(L, r);
  st->cases++;
  if (kind < 0.55) {
    // Sometimes a second pass with another batch size (re-Prepare, scratch growth).
    std::unique_ptr<Layer> L2;
    if (r.chance(0.25)) {
      Rng r2(r.next());
      Layer other = L;
      other.B = r2.range(0, 12);
      const size_t per = L.op == 0 ? static_cast<size_t>(L.D) : static_cast<size_t>(L.H) * L.W * L.D;
      fill_normal(r2, other.x, per * other.B, 1.0);
      L2.reset(new Layer(other));
      S.reshape_x = x_shape(other);
    }
    OpRun run = run_op(L, S, L2.get());
    const Layer& last = L2 ? *L2 : L;
    if (!run.prepared || run.prepare_status != kTfLiteOk) {
      fail(st, i, "valid layer rejected by Prepare", run.error, L);
      return false;
    }
    if (!run.invoked || run.invoke_status != kTfLiteOk) {
      fail(st, i, "valid layer failed in Invoke", run.error, L);
      return false;
    }
    Reference R = reference(last);
    if (run.out_shape != R.shape) {
      std::string s = "output shape [";
      for (int v : run.out_shape) s += std::to_string(v) + ",";
      s += "] expected [";
      for (int v : R.shape) s += std::to_string(v) + ",";
      fail(st, i, "output shape", s + "]", last);
      return false;
    }
    std::vector<float> y = run.y;
    size_t n = 1;
    for (int v : R.shape) n *= static_cast<size_t>(v);
    if (y.size() != n) {
      fail(st, i, "output size", std::to_string(y.size()) + " values", last);
      return false;
    }
    std::string why = compare(last, R, y.data(), st);
    if (!why.empty()) {
      fail(st, i, "op output", why, last);
      return false;
    }
    st->passed++;
    return true;
  }
  if (kind < 0.90) {
    int d = kNone;
    for (int t = 0; t < 10 && d == kNone; ++t) {
      const int c = r.range(1, kNumDefects - 1);
      if (apply_defect(c, L, &S, r)) d = c;
    }
    if (d == kNone) {  // nothing applied: count as a valid pass-through
      st->passed++;
      return true;
    }
    OpRun run = run_op(L, S);
    if (run.prepared) {
      fail(st, i, (std::string("invalid input accepted: ") + kDefectNames[d]).c_str(),
           "Prepare returned kTfLiteOk", L);
      return false;
    }
    if (run.error.empty()) {
      fail(st, i, (std::string("no error message for: ") + kDefectNames[d]).c_str(),
           "Prepare failed without ReportError", L);
      return false;
    }
    if (g_opt.verbose) std::fprintf(stderr, "case %ld %s -> %s\n", i, kDefectNames[d], run.error.c_str());
    st->expected_errors++;
    st->passed++;
    return true;
  }
  // Mutated options: any status is fine, a crash / sanitizer report is not.
  mutate(&S.options, r);
  OpRun run = run_op(L, S);
  if (run.prepared && run.invoked && run.invoke_status == kTfLiteOk)
    st->mutated_ok++;
  else
    st->mutated_err++;
  if (!run.prepared && run.error.empty()) {
    fail(st, i, "mutated options", "Prepare failed without ReportError", L);
    return false;
  }
  st->passed++;
  return true;
}

int run_cases(bool ops, long n) {
  Stats st;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    if (g_opt.only >= 0 && i != g_opt.only) continue;
    progress(i);
    ops ? op_case(i, &st) : kernel_case(i, &st);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%s: %ld cases in %.1f s (isa: %s): %ld expected errors, %ld mutated-options runs ok / %ld "
      "rejected, %ld values checked, %ld gates within rounding of the threshold, %ld NaN "
      "pre-activations turned into numbers by relu/relu6/hard_sigmoid, %ld int8 cases, %ld of them conv, "
      "%ld with static scales (%s)\n",
      ops ? "ops" : "kernels", st.cases, secs, cc_kernel_isa(), st.expected_errors, st.mutated_ok,
      st.mutated_err, st.values_checked, st.ambiguous_blocks, st.nan_deviation, st.int8_cases,
      st.int8_conv_cases, st.int8_static_cases, cc_kernel_isa_q8());
  std::printf("%ld passed, %ld failed\n", st.passed, st.failed);
  if (g_opt.progress) std::remove(g_opt.progress);
  return st.failed ? 1 : 0;
}

// ------------------------------------------------------------------ model

bool read_exact(FILE* f, void* p, size_t n) { return std::fread(p, 1, n, f) == n; }
bool read_i32(FILE* f, int* v) { return read_exact(f, v, 4); }
bool read_floats(FILE* f, std::vector<float>* v, size_t n) {
  v->resize(n);
  return n == 0 || read_exact(f, v->data(), n * 4);
}

// File written by tflite/arm/export_layers.py (little endian):
//   "CCLAYER1" i32 n_layers, then per layer:
//   i32 op, i32 name_len, name, i32 act_len, act, f32 threshold, i32 has_bias,
//   i32 B, D, H, W, K, bs, KH, KW, sh, sw, dh, dw, same, ibs_opt,
//   f32 x[...], kernel_bm[...], bias[units] (if has_bias), wp[D*K], bp[K], y[...]
bool load_layers(const char* path, std::vector<Layer>* layers, std::string* err) {
  FILE* f = std::fopen(path, "rb");
  if (!f) {
    *err = std::string("cannot open ") + path;
    return false;
  }
  char magic[8];
  int n = 0;
  bool ok = read_exact(f, magic, 8) && std::memcmp(magic, "CCLAYER1", 8) == 0 && read_i32(f, &n) &&
            n >= 0 && n < 1000;
  for (int l = 0; ok && l < n; ++l) {
    Layer L;
    int nl = 0, al = 0, has_bias = 0;
    ok = read_i32(f, &L.op) && (L.op == 0 || L.op == 1) && read_i32(f, &nl) && nl >= 0 && nl < 256;
    if (!ok) break;
    L.name.resize(nl);
    ok = read_exact(f, &L.name[0], nl) && read_i32(f, &al) && al > 0 && al < 64;
    if (!ok) break;
    std::string act(al, ' ');
    ok = read_exact(f, &act[0], al);
    L.act = cc_activation_from_name(act.data(), act.size());
    ok = ok && L.act >= 0 && read_exact(f, &L.thr, 4) && read_i32(f, &has_bias);
    L.has_bias = has_bias != 0;
    int* fields[] = {&L.B, &L.D, &L.H, &L.W, &L.K, &L.bs, &L.KH, &L.KW, &L.sh, &L.sw, &L.dh, &L.dw};
    for (int* p : fields) ok = ok && read_i32(f, p) && *p >= 0 && *p < (1 << 24);
    int same = 0;
    ok = ok && read_i32(f, &same) && read_i32(f, &L.ibs_opt);
    L.same = same != 0;
    if (!ok) break;
    int OH = 0, OW = 0, pt, pl;
    if (L.op == 1) {
      conv_geometry(L.H, L.KH, L.sh, L.dh, L.same, &OH, &pt);
      conv_geometry(L.W, L.KW, L.sw, L.dw, L.same, &OW, &pl);
    }
    const size_t nx = L.op == 0 ? static_cast<size_t>(L.B) * L.D : static_cast<size_t>(L.B) * L.H * L.W * L.D;
    const size_t nk = L.op == 0 ? static_cast<size_t>(L.K) * L.D * L.bs
                                : static_cast<size_t>(L.K) * L.KH * L.KW * L.D * L.bs;
    const size_t ny = L.op == 0 ? static_cast<size_t>(L.B) * L.units()
                                : static_cast<size_t>(L.B) * OH * OW * L.units();
    ok = read_floats(f, &L.x, nx) && read_floats(f, &L.kernel, nk) &&
         (!L.has_bias || read_floats(f, &L.bias, L.units())) &&
         read_floats(f, &L.wp, static_cast<size_t>(L.D) * L.K) && read_floats(f, &L.bp, L.K) &&
         read_floats(f, &L.y_expected, ny);
    if (ok) layers->push_back(std::move(L));
  }
  std::fclose(f);
  if (!ok) *err = std::string("malformed layer file ") + path;
  return ok;
}

int run_model(const char* path) {
  std::vector<Layer> layers;
  std::string err;
  if (!load_layers(path, &layers, &err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }
  Stats st;
  long failed = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    Rng r(1);
    NodeSetup S = valid_setup(L, r);
    S.threads = 1;
    OpRun run = run_op(L, S);
    std::string why;
    double max_err = 0.0;
    long active = 0;
    if (!run.prepared || !run.invoked || run.invoke_status != kTfLiteOk) {
      why = "op failed: " + run.error;
    } else if (run.y.size() != L.y_expected.size()) {
      why = "output size " + std::to_string(run.y.size()) + " != " + std::to_string(L.y_expected.size());
    } else {
      Reference R = reference(L);
      why = compare(L, R, run.y.data(), &st);
      for (size_t k = 0; k < run.y.size(); ++k) {
        const double d = std::fabs(static_cast<double>(run.y[k]) - L.y_expected[k]);
        const double tol = 1e-4 * (1.0 + std::fabs(L.y_expected[k]));
        max_err = std::max(max_err, d);
        if (why.empty() && !(d <= tol)) {
          char b[160];
          snprintf(b, sizeof b, "y[%zu]=%.9g but Keras gave %.9g", k, run.y[k], L.y_expected[k]);
          why = b;
        }
      }
      for (uint8_t g : R.gate) active += g == kOn;
    }
    // Timing of this layer through the kernels (single thread).
    double us = 0.0;
    uint64_t macs = 0;
    if (why.empty() && g_opt.reps > 0) {
      std::vector<float> y;
      run_kernels(L, &y, &macs);
      auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < g_opt.reps; ++k) run_kernels(L, &y, nullptr);
      us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
           g_opt.reps;
    }
    const long dense_macs = L.op == 0 ? static_cast<long>(L.B) * L.D * L.units()
                                      : static_cast<long>(run.y.size()) * L.KH * L.KW * L.D;
    std::printf(
        "layer %zu %-24s %s B=%d in=%d units=%d K=%d act=%s: %s, max |y - keras| = %.3g, "
        "blocks on %ld/%d, macs %" PRIu64 " of %ld dense, %.1f us/call\n",
        l, L.name.c_str(), L.op ? "conv " : "dense", L.B, L.D, L.units(), L.K, kActNames[L.act],
        why.empty() ? "ok" : "MISMATCH", max_err, active, L.B * L.K, macs, dense_macs, us);
    if (!why.empty()) {
      std::fprintf(stderr, "layer %zu (%s): %s\n", l, L.name.c_str(), why.c_str());
      ++failed;
    }
  }
  std::printf("%ld passed, %ld failed\n", static_cast<long>(layers.size()) - failed, failed);
  return failed ? 1 : 0;
}

// ------------------------------------------------------------------ bench

// Plain dense layer y = act(x W + b), W [D][U]: the "no gating" loop a
// compiler vectorizes, for comparison.
__attribute__((noinline)) void plain_dense(const float* x, const float* w, const float* b, float* y,
                                           int B, int D, int U) {
  for (int e = 0; e < B; ++e) {
    float* ye = y + static_cast<size_t>(e) * U;
    for (int u = 0; u < U; ++u) ye[u] = b[u];
    for (int d = 0; d < D; ++d) {
      const float xv = x[static_cast<size_t>(e) * D + d];
      const float* wr = w + static_cast<size_t>(d) * U;
      for (int u = 0; u < U; ++u) ye[u] += xv * wr[u];
    }
    for (int u = 0; u < U; ++u) ye[u] = ye[u] > 0 ? ye[u] : 0;
  }
}

int run_bench(int argc, char** argv) {
  if (argc < 1) return 2;
  const bool conv = std::strcmp(argv[0], "conv") == 0;
  if (!conv && std::strcmp(argv[0], "dense") != 0) return 2;
  std::vector<int> a;
  for (int i = 1; i < argc; ++i) a.push_back(std::atoi(argv[i]));
  Layer L;
  int active, reps;
  Rng r(g_opt.seed);
  if (!conv) {
    if (a.size() != 6) return 2;
    L.op = 0;
    L.D = a[0];
    const int units = a[1];
    L.K = a[2];
    active = a[3];
    L.B = a[4];
    reps = a[5];
    if (L.K < 1 || units % L.K || active < 0 || active > L.K) return 2;
    L.bs = units / L.K;
    fill_normal(r, L.x, static_cast<size_t>(L.B) * L.D, 1.0);
    fill_normal(r, L.kernel, static_cast<size_t>(units) * L.D, 0.05);
  } else {
    if (a.size() != 8 && a.size() != 9) return 2;
    L.op = 1;
    L.H = a[0];
    L.W = a[1];
    L.D = a[2];
    const int filters = a[3];
    L.K = a[4];
    active = a[5];
    L.B = a[6];
    reps = a[7];
    L.KH = L.KW = a.size() == 9 ? a[8] : 3;
    L.same = true;
    if (L.K < 1 || filters % L.K || active < 0 || active > L.K) return 2;
    L.bs = filters / L.K;
    fill_normal(r, L.x, static_cast<size_t>(L.B) * L.H * L.W * L.D, 1.0);
    fill_normal(r, L.kernel, static_cast<size_t>(filters) * L.KH * L.KW * L.D, 0.05);
  }
  L.act = CC_ACT_RELU;
  L.thr = 0.5f;
  fill_normal(r, L.bias, static_cast<size_t>(L.units()), 0.1);
  // Policy: exactly `active` blocks on, spread over the K blocks.
  L.wp.assign(static_cast<size_t>(L.D) * L.K, 0.0f);
  L.bp.assign(static_cast<size_t>(L.K), -20.0f);
  for (int k = 0; k < active; ++k) L.bp[static_cast<size_t>(k) * L.K / std::max(active, 1)] = 20.0f;
  std::vector<float> y;
  uint64_t macs = 0;
  run_kernels(L, &y, &macs);
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < reps; ++k) run_kernels(L, &y, nullptr);
  const double us = reps ? std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps : 0.0;
  double plain_us = -1.0;
  if (!conv && reps > 0) {
    std::vector<float> w(static_cast<size_t>(L.D) * L.units()), yy(static_cast<size_t>(L.B) * L.units());
    for (size_t i = 0; i < w.size(); ++i) w[i] = L.kernel[i];
    auto t1 = std::chrono::steady_clock::now();
    for (int k = 0; k < reps; ++k) plain_dense(L.x.data(), w.data(), L.bias.data(), yy.data(), L.B, L.D, L.units());
    plain_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count() / reps;
  }
  std::printf(
      "{\"op\": \"%s\", \"isa\": \"%s\", \"batch\": %d, \"in\": %d, \"units\": %d, \"num_blocks\": %d, "
      "\"active_blocks\": %d, \"macs\": %" PRIu64 ", \"us_per_call\": %.2f, \"plain_dense_us\": %.2f, "
      "\"reps\": %d}\n",
      conv ? "conv" : "dense", cc_kernel_isa(), L.B, L.D, L.units(), L.K, active, macs, us, plain_us, reps);
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: condcomp_driver kernels|ops N [--seed S] [--only I] [--progress FILE] "
               "[--strict-nan] [--verbose]\n"
               "       condcomp_driver model FILE [--reps R]\n"
               "       condcomp_driver bench dense D UNITS K ACTIVE BATCH REPS\n"
               "       condcomp_driver bench conv H W C FILTERS K ACTIVE BATCH REPS [KSIZE]\n"
               "       condcomp_driver info\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> pos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seed") g_opt.seed = std::strtoull(val("--seed"), nullptr, 10);
    else if (a == "--only") g_opt.only = std::atol(val("--only"));
    else if (a == "--progress") g_opt.progress = val("--progress");
    else if (a == "--reps") g_opt.reps = std::atoi(val("--reps"));
    else if (a == "--strict-nan") g_opt.strict_nan = true;
    else if (a == "--verbose") g_opt.verbose = true;
    else pos.push_back(argv[i]);
  }
  if (pos.empty()) return usage();
  const std::string cmd = pos[0];
  if (cmd == "info") {
    std::printf("isa: %s\nint8 isa: %s\nsizeof(TfLiteTensor)=%zu sizeof(TfLiteRegistration)=%zu\n",
                cc_kernel_isa(), cc_kernel_isa_q8(), sizeof(TfLiteTensor), sizeof(TfLiteRegistration));
    return 0;
  }
  if (cmd == "kernels" || cmd == "ops") {
    const long n = pos.size() > 1 ? std::atol(pos[1]) : 200;
    return run_cases(cmd == "ops", n);
  }
  if (cmd == "model" && pos.size() == 2) return run_model(pos[1]);
  if (cmd == "bench") {
    int rc = run_bench(static_cast<int>(pos.size()) - 1, pos.data() + 1);
    return rc == 2 ? usage() : rc;
  }
  return usage();
}
