// Test / benchmark driver for the CondComp custom ops, for the host (also
// under ASan/UBSan/TSan, tflite/sanitize.sh) and aarch64 (qemu-user or a
// phone / ARM board, tflite/arm/build.sh).
//
// It links the portable kernels (condcomp_kernels.h: tflite/ops/cc_*.c) and the
// TFLite glue (tflite/ops/condcomp_tflite_ops.c) and checks them against a scalar
// double-precision reference of docs/architecture.md written here
// (reference.cc), independently of the code under test:
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
//   condcomp_driver check FILE             compares outputs another runtime
//                                          computed (layer_file.h, CCLAYER2)
//                                          with the reference
//   condcomp_driver quantize N [--seed S] the int8 activation quantization of
//                                          every variant this CPU runs against
//                                          the double rule, on values at and
//                                          next to half-integers of x * k
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
// The last line of `kernels` / `ops` / `model` / `check` is "N passed, N failed".
//
// One concern per file: reference (the float64 reference and the comparison),
// random_layer, run_kernels, kernel_fuzz, mock_runtime.h, op_runner, defects,
// op_fuzz, fuzz_loop (the fuzzers' case loop), layer_file, model_check,
// output_check, quantize_check, bench. The sources: driver_sources in tflite/ops/build.txt.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench.h"
#include "condcomp_kernels.h"
#include "condcomp_tflite_ops.h"
#include "fuzz_loop.h"
#include "model_check.h"
#include "quantize_check.h"
#include "options.h"
#include "output_check.h"

namespace ccdrv {

Options g_opt;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: condcomp_driver kernels|ops N [--seed S] [--only I] [--progress FILE] "
               "[--strict-nan] [--verbose]\n"
               "       condcomp_driver quantize N [--seed S] [--only I]\n"
               "       condcomp_driver model FILE [--reps R]\n"
               "       condcomp_driver check FILE\n"
               "       condcomp_driver bench dense D UNITS K ACTIVE BATCH REPS\n"
               "       condcomp_driver bench conv H W C FILTERS K ACTIVE BATCH REPS [KSIZE]\n"
               "       condcomp_driver info\n");
  return 2;
}

}  // namespace

}  // namespace ccdrv

using namespace ccdrv;  // NOLINT(build/namespaces)

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
    if (a == "--seed")
      g_opt.seed = std::strtoull(val("--seed"), nullptr, 10);
    else if (a == "--only")
      g_opt.only = std::atol(val("--only"));
    else if (a == "--progress")
      g_opt.progress = val("--progress");
    else if (a == "--reps")
      g_opt.reps = std::atoi(val("--reps"));
    else if (a == "--strict-nan")
      g_opt.strict_nan = true;
    else if (a == "--verbose")
      g_opt.verbose = true;
    else
      pos.push_back(argv[i]);
  }
  if (pos.empty()) return usage();
  const std::string cmd = pos[0];
  if (cmd == "info") {
    std::printf("isa: %s\nint8 isa: %s\nsizeof(TfLiteTensor)=%zu sizeof(TfLiteRegistration)=%zu\n",
                cc_kernel_isa(), cc_kernel_isa_q8(), sizeof(TfLiteTensor),
                sizeof(TfLiteRegistration));
    return 0;
  }
  if (cmd == "kernels" || cmd == "ops") {
    const long n = pos.size() > 1 ? std::atol(pos[1]) : 200;
    return run_cases(cmd == "ops", n);
  }
  if (cmd == "quantize") return run_quantize_check(pos.size() > 1 ? std::atol(pos[1]) : 1000);
  if (cmd == "model" && pos.size() == 2) return run_model(pos[1]);
  if (cmd == "check" && pos.size() == 2) return run_check(pos[1]);
  if (cmd == "bench") {
    int rc = run_bench(static_cast<int>(pos.size()) - 1, pos.data() + 1);
    return rc == 2 ? usage() : rc;
  }
  return usage();
}
