// The kernel fuzzer (kernel_fuzz.h).

#include "kernel_fuzz.h"

#include <vector>

#include "fuzz_loop.h"
#include "options.h"
#include "random_layer.h"
#include "rng.h"
#include "run_kernels.h"

namespace ccdrv {

bool kernel_case(long i, Stats* st) {
  Rng r(case_seed(g_opt.seed, i));
  const bool conv = r.chance(0.5);
  const bool special = r.chance(0.15);
  Layer L = random_layer(r, conv, special);
  if (r.chance(0.4)) make_int8(&L, r, st);
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

}  // namespace ccdrv
