// The op fuzzer (op_fuzz.h).

#include "op_fuzz.h"

#include <cmath>
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

namespace {

// A folded output layer for dense layer L: 1-40 outputs (one to five
// vectors and a partial one), normal weights, sometimes without a bias and
// sometimes with one infinite or NaN weight (which must then multiply the
// zeros of off blocks: 0 * Inf = NaN).
void add_random_head(Layer* L, Rng& r) {
  L->head = r.chance(0.5) ? r.range(1, 12) : r.range(13, 40);
  L->has_head_bias = r.chance(0.8);
  fill_normal(r, L->wh, static_cast<size_t>(L->units()) * L->head, 1.0);
  fill_normal(r, L->bh, static_cast<size_t>(L->head), 1.0);
  if (r.chance(0.15)) {
    static const std::vector<float> kBad = {INFINITY, -INFINITY, NAN};
    L->wh[static_cast<size_t>(r.range(0, static_cast<int>(L->wh.size()) - 1))] = r.pick(kBad);
  }
}

// y (the op's [B][head] output) against hidden (its output without the head,
// already checked) times the head, in double: NaN and infinities exactly, the
// rest within the rounding bound of a dot product of units + 1 terms.
std::string check_head(const Layer& L, const std::vector<float>& hidden,
                       const std::vector<float>& y, Stats* st) {
  const int U = L.units(), H = L.head;
  if (y.size() != static_cast<size_t>(L.B) * H) return "head output has the wrong size";
  for (int e = 0; e < L.B; ++e) {
    for (int o = 0; o < H; ++o) {
      double z = L.has_head_bias ? L.bh[o] : 0.0;
      double abs_sum = std::fabs(z);
      for (int u = 0; u < U; ++u) {
        const double t = static_cast<double>(hidden[static_cast<size_t>(e) * U + u]) *
                         L.wh[static_cast<size_t>(u) * H + o];
        z += t;
        abs_sum += std::fabs(t);
      }
      const float got = y[static_cast<size_t>(e) * H + o];
      char buf[200];
      std::snprintf(buf, sizeof buf, "example %d output %d: got %.9g, expected %.17g", e, o,
                    static_cast<double>(got), z);
      if (std::isnan(z) || std::isnan(got)) {
        if (std::isnan(z) != std::isnan(got)) return buf;
      } else if (std::isinf(z) || std::isinf(got)) {
        if (got != z && abs_sum < 1e37) return buf;
      } else if (abs_sum < 1e37 && std::fabs(got - z) > dot_err(U + 1, abs_sum) + 1e-30) {
        return buf;
      }
      st->values_checked++;
    }
  }
  return "";
}

}  // namespace

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
    // The same layer with a folded output layer: its output against the
    // double-precision product of the output just checked.
    if (L.op == 0 && !L2 && r.chance(0.35)) {
      Layer Lh = L;
      add_random_head(&Lh, r);
      NodeSetup Sh = valid_setup(Lh, r);
      OpRun head_run = run_op(Lh, Sh);
      if (!head_run.invoked || head_run.invoke_status != kTfLiteOk) {
        fail(st, i, "layer with a head failed", head_run.error, Lh);
        return false;
      }
      why = check_head(Lh, y, head_run.y, st);
      if (!why.empty()) {
        fail(st, i, "head output", why, Lh);
        return false;
      }
      st->head_cases++;
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
