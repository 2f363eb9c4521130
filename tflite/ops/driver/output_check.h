// The output check (`check FILE`): outputs another runtime computed (a
// CCLAYER2 file, e.g. from the interpreter harness of
// tests/test_native_fuzz.py) compared with the reference by the rule the
// fuzzers use (reference.h: shape, all-NaN rows for non-finite inputs,
// exact zeros for blocks off, values within the rounding bounds).
//
// Prints "FAIL layer I (NAME): REASON" for each mismatch, a summary line
// and "N passed, N failed".
#pragma once

namespace ccdrv {

// Returns the exit status: 0 all layers match, 1 a mismatch, 2 a bad file.
int run_check(const char* path);

}  // namespace ccdrv
