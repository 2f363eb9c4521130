// The fuzzers' case loop (fuzz_loop.h).

#include "fuzz_loop.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "condcomp_kernels.h"
#include "kernel_fuzz.h"
#include "op_fuzz.h"
#include "options.h"

namespace ccdrv {

void progress(long i) {
  if (!g_opt.progress) return;
  FILE* f = std::fopen(g_opt.progress, "w");
  if (!f) return;
  std::fprintf(f, "%ld %" PRIu64 "\n", i, g_opt.seed);
  std::fclose(f);
}

void fail(Stats* st, long i, const char* what, const std::string& why, const Layer& L) {
  st->failed++;
  std::fprintf(
      stderr,
      "FAIL case %ld (seed %" PRIu64
      ") %s: %s\n  layer op=%s B=%d D=%d H=%d W=%d K=%d bs=%d "
      "k=%dx%d s=%dx%d d=%dx%d %s ibs=%d act=%s thr=%.9g top_k=%d scale_by_gate=%d bias=%d "
      "int8=%d\n",
      i, g_opt.seed, what, why.c_str(), L.op ? "conv" : "dense", L.B, L.D, L.H, L.W, L.K, L.bs,
      L.KH, L.KW, L.sh, L.sw, L.dh, L.dw, L.same ? "same" : "valid", L.ibs_opt, kActNames[L.act],
      L.thr, L.top_k, L.scale_by_gate ? 1 : 0, L.has_bias ? 1 : 0, L.quant ? 1 : 0);
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
      "pre-activations turned into numbers by relu/relu6/hard_sigmoid, %ld int8 cases, %ld of them "
      "conv, "
      "%ld with static scales (%s), %ld with a folded output layer\n",
      ops ? "ops" : "kernels", st.cases, secs, cc_kernel_isa(), st.expected_errors, st.mutated_ok,
      st.mutated_err, st.values_checked, st.ambiguous_blocks, st.nan_deviation, st.int8_cases,
      st.int8_conv_cases, st.int8_static_cases, cc_kernel_isa_q8(), st.head_cases);
  std::printf("%ld passed, %ld failed\n", st.passed, st.failed);
  if (g_opt.progress) std::remove(g_opt.progress);
  return st.failed ? 1 : 0;
}

}  // namespace ccdrv
