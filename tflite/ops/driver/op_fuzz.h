// The op fuzzer (`ops N`): random layers through the TFLite glue on the mock
// runtime. Valid nodes must match the reference, nodes with a defect must
// fail in Prepare with ReportError, mutated options must not crash.
#pragma once

#include "reference.h"

namespace ccdrv {

// Case i of the run (seed --seed): true if it passed.
bool op_case(long i, Stats* st);

}  // namespace ccdrv
