// The benchmark (bench.h).

#include "bench.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "condcomp_kernels.h"
#include "options.h"
#include "random_layer.h"
#include "rng.h"
#include "run_kernels.h"

namespace ccdrv {

namespace {

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

}  // namespace

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
  const double us =
      reps ? std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                     .count() /
                 reps
           : 0.0;
  double plain_us = -1.0;
  if (!conv && reps > 0) {
    std::vector<float> w(static_cast<size_t>(L.D) * L.units()),
        yy(static_cast<size_t>(L.B) * L.units());
    for (size_t i = 0; i < w.size(); ++i) w[i] = L.kernel[i];
    auto t1 = std::chrono::steady_clock::now();
    for (int k = 0; k < reps; ++k)
      plain_dense(L.x.data(), w.data(), L.bias.data(), yy.data(), L.B, L.D, L.units());
    plain_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count() /
        reps;
  }
  std::printf(
      "{\"op\": \"%s\", \"isa\": \"%s\", \"batch\": %d, \"in\": %d, \"units\": %d, \"num_blocks\": "
      "%d, "
      "\"active_blocks\": %d, \"macs\": %" PRIu64
      ", \"us_per_call\": %.2f, \"plain_dense_us\": %.2f, "
      "\"reps\": %d}\n",
      conv ? "conv" : "dense", cc_kernel_isa(), L.B, L.D, L.units(), L.K, active, macs, us,
      plain_us, reps);
  return 0;
}

}  // namespace ccdrv
