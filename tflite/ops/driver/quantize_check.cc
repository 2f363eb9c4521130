// The int8 activation quantization against quantize_value_ref (reference.cc).
// Each case is one call of each variant (rows x blocks, random block size,
// some blocks skipped with k = 0) whose values are mostly placed where
// rounding x * k is hardest: exactly at a half-integer of x * k and a few
// floats either side, plus random values, values clamped at +-127, zeros
// and huge ones; k spans dynamic scales (127 / max |x|) and static ones from
// subnormal to past the float range.
#include "quantize_check.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "cc_kernels_internal.h"
}
#include "options.h"
#include "reference.h"
#include "rng.h"

namespace ccdrv {
namespace {

struct Variant {
  const char* name;
  quantize_fn fn;
};

// The variants this CPU can run (the selected one is among them).
std::vector<Variant> variants() {
  std::vector<Variant> v = {{"portable", cc_quantize_default}};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    v.push_back({"avx2", cc_quantize_avx2});
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
    v.push_back({"avx512", cc_quantize_avx512});
#endif
#if defined(__aarch64__)
  v.push_back({"neon", cc_quantize_neon});
#endif
  v.push_back({"selected", cc_select_quantize()});
  return v;
}

// A value whose product with k lands at or next to a half-integer h: the
// float nearest h / k, then up to 3 floats either way.
float near_half(Rng& r, double k) {
  const double h = (r.range(-128, 127) + 0.5);
  float x = static_cast<float>(h / k);
  for (int s = r.range(-3, 3); s != 0; s += s > 0 ? -1 : 1)
    x = std::nextafter(x, s > 0 ? INFINITY : -INFINITY);
  return std::isfinite(x) ? x : std::copysign(FLT_MAX, x);  // inputs are finite
}

double random_k(Rng& r) {
  switch (r.range(0, 5)) {
    case 0:  // a dynamic scale: 127 / max |x| with max |x| of any magnitude
      return 127.0 / static_cast<double>(std::ldexp(1.0 + r.uniform(), r.range(-20, 20)));
    case 1:  // a static scale 1 / input_scale, float input_scale
      return 1.0 / static_cast<double>(
                       static_cast<float>(std::ldexp(0.5 + r.uniform(), r.range(-12, 4))));
    case 2:  // k past the float range (a subnormal max |x|)
      return 127.0 / static_cast<double>(std::ldexp(1.0 + r.uniform(), r.range(-149, -127)));
    case 3:  // k below the normal float range (a huge static scale)
      return std::ldexp(1.0 + r.uniform(), r.range(-140, -126));
    case 4:  // small integers and powers of two: many products exactly at halves
      return r.chance(0.5) ? static_cast<double>(r.range(1, 9)) : std::ldexp(1.0, r.range(-8, 8));
    default:
      return std::exp(r.uniform() * 40.0 - 20.0);
  }
}

}  // namespace

int run_quantize_check(long n) {
  const std::vector<Variant> vs = variants();
  long passed = 0, failed = 0, values = 0;
  for (long i = 0; i < n; ++i) {
    if (g_opt.only >= 0 && i != g_opt.only) continue;
    Rng r(case_seed(g_opt.seed, i));
    const int rows = r.range(1, 3), n_blocks = r.range(1, 4), ibs = r.range(1, 70);
    const int padded = (ibs + 3) / 4 * 4;
    std::vector<double> k(n_blocks);
    for (int b = 0; b < n_blocks; ++b) k[b] = r.chance(0.1) ? 0.0 : random_k(r);
    std::vector<float> x(static_cast<size_t>(rows) * n_blocks * ibs);
    for (int row = 0; row < rows; ++row)
      for (int b = 0; b < n_blocks; ++b)
        for (int v = 0; v < ibs; ++v) {
          const double kb = k[b] > 0.0 ? k[b] : 1.0;
          float value;
          const int kind = r.range(0, 9);
          if (kind < 6) {
            value = near_half(r, kb);
          } else if (kind == 6) {
            value = static_cast<float>(r.normal() * 127.0 / kb);
          } else if (kind == 7) {
            value = static_cast<float>((r.chance(0.5) ? 1 : -1) * (127.0 + 4.0 * r.uniform()) / kb);
          } else if (kind == 8) {
            value = r.chance(0.5) ? 0.0f : -0.0f;
          } else {
            value = (r.chance(0.5) ? 1.0f : -1.0f) * std::ldexp(1.0f, r.range(0, 127));
          }
          x[(static_cast<size_t>(row) * n_blocks + b) * ibs + v] = value;
        }
    bool ok = true;
    std::string detail;
    for (const Variant& var : vs) {
      std::vector<int8_t> q(static_cast<size_t>(rows) * n_blocks * padded, 99);
      var.fn(x.data(), static_cast<size_t>(rows), n_blocks, ibs, k.data(), q.data());
      for (int row = 0; row < rows && ok; ++row)
        for (int b = 0; b < n_blocks && ok; ++b) {
          if (k[b] == 0.0) continue;  // not written, never read
          for (int v = 0; v < padded && ok; ++v) {
            const size_t at = (static_cast<size_t>(row) * n_blocks + b) * padded + v;
            const float xv = v < ibs ? x[(static_cast<size_t>(row) * n_blocks + b) * ibs + v] : 0;
            const int want = v < ibs ? quantize_value_ref(xv, k[b]) : 0;
            ++values;
            if (q[at] != want) {
              ok = false;
              char buf[256];
              std::snprintf(buf, sizeof(buf),
                            "%s: row %d block %d value %d: x=%.9g k=%.17g -> %d, want %d", var.name,
                            row, b, v, static_cast<double>(xv), k[b], q[at], want);
              detail = buf;
            }
          }
        }
    }
    if (ok) {
      ++passed;
    } else {
      ++failed;
      std::printf("case %ld: %s\n", i, detail.c_str());
    }
  }
  std::printf("quantize: %ld cases, %ld values checked over %zu variants\n", passed + failed,
              values, vs.size());
  std::printf("%ld passed, %ld failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace ccdrv
