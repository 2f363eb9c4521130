// Runs a layer through the portable kernels' API (cc_gated_*_gate/_block),
// without TFLite: what the kernel fuzzer checks and the model check and the
// benchmark time.
#pragma once

#include <cstdint>
#include <vector>

#include "layer.h"

namespace ccdrv {

// Runs the portable kernels on L (no TFLite). Output into y (sized here);
// the multiply-adds of the computed blocks into *macs_out (if not null).
void run_kernels(const Layer& L, std::vector<float>* y, uint64_t* macs_out);

}  // namespace ccdrv
