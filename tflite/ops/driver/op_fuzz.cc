// The op fuzzer (op_fuzz.h).

#include "op_fuzz.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "defects.h"
#include "fuzz_loop.h"
#include "op_runner.h"
#include "options.h"
#include "random_layer.h"
#include "rng.h"

namespace ccdrv {

bool op_case(long i, Stats* st) {
  Rng r(case_seed(g_opt.seed, i) ^ 0x5555);
  const bool conv = r.chance(0.5);
  const double u = r.uniform();
  const bool special = u < 0.12;
  Layer L = random_layer(r, conv, special);
  // 55% valid, 35% one defect, 10% mutated options; a third of the valid and
  // defective layers int8, half of those with static activation scales.
  const double kind = r.uniform();
  if (kind < 0.90 && r.chance(0.35)) make_int8(&L, r, st);
  NodeSetup S = valid_setup(L, r);
  st->cases++;
  if (kind < 0.55) {
    // Sometimes a second pass with another batch size (re-Prepare, scratch growth).
    std::unique_ptr<Layer> L2;
    if (r.chance(0.25)) {
      Rng r2(r.next());
      Layer other = L;
      other.B = r2.range(0, 12);
      const size_t per =
          L.op == 0 ? static_cast<size_t>(L.D) : static_cast<size_t>(L.H) * L.W * L.D;
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
    if (g_opt.verbose)
      std::fprintf(stderr, "case %ld %s -> %s\n", i, kDefectNames[d], run.error.c_str());
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

}  // namespace ccdrv
