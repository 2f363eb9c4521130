// The kernel fuzzer (`kernels N`): random layers, float and int8, straight
// through the kernel API, compared with the reference.
#pragma once

#include "reference.h"

namespace ccdrv {

// Case i of the run (seed --seed): true if it passed.
bool kernel_case(long i, Stats* st);

}  // namespace ccdrv
