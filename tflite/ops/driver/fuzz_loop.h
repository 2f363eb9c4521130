// The case loop of the kernel and op fuzzers (`kernels N`, `ops N`): the
// progress file a harness reads to name the case that crashed, the failure
// report (with the case's layer, replayable with --seed and --only) and the
// two summary lines.
#pragma once

#include <string>

#include "layer.h"
#include "reference.h"

namespace ccdrv {

// Writes "I SEED" to --progress FILE (if given) before case I runs.
void progress(long i);

// Counts a failed case and prints it to stderr with its layer.
void fail(Stats* st, long i, const char* what, const std::string& why, const Layer& L);

// Runs cases 0..n-1 (or --only I) of the op fuzzer (ops) or the kernel
// fuzzer; prints the summary, returns the exit status (0 or 1).
int run_cases(bool ops, long n);

}  // namespace ccdrv
