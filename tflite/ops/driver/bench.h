// The benchmark (`bench dense|conv ...`): one gated layer with a given number
// of blocks on, timed through the kernels (and a plain dense loop for
// comparison); prints one JSON line.
#pragma once

namespace ccdrv {

// argv: "dense" D UNITS K ACTIVE BATCH REPS, or "conv" H W C FILTERS K
// ACTIVE BATCH REPS [KSIZE]. Returns 0, or 2 for bad arguments.
int run_bench(int argc, char** argv);

}  // namespace ccdrv
