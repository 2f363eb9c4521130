// The model check (model_check.h).

#include "model_check.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "layer_file.h"
#include "op_runner.h"
#include "options.h"
#include "reference.h"
#include "rng.h"
#include "run_kernels.h"

namespace ccdrv {

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
      why = "output size " + std::to_string(run.y.size()) +
            " != " + std::to_string(L.y_expected.size());
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
      us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
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

}  // namespace ccdrv
