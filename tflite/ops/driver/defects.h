// Invalid variants of a valid node (each must make Prepare fail with
// ReportError) and random damage to its options buffer (any status is fine,
// a crash is not).
#pragma once

#include <cstdint>
#include <vector>

#include "layer.h"
#include "op_runner.h"
#include "rng.h"

namespace ccdrv {

// Invalid variants of a valid setup. Each must make Prepare fail.
enum Defect {
  kNone = 0,
  kBadActivation,
  kThresholdRange,
  kThresholdNaN,
  kIbsNotDividing,
  kIbsNegative,
  kMissingKey,
  kUnknownKey,
  kWrongValueType,
  kBadPadding,
  kBadStride,
  kRankX,
  kRankKernel,
  kDimMismatch,
  kBiasLength,
  kPolicyShape,
  kPolicyBiasLength,
  kNonFloat,
  kInputCount,
  kOutputCount,
  kBadIndex,
  kZeroFeatures,
  kNegativeDim,
  kEmptyOptions,
  kHugeX,
  kBadInputScale,
  kTopKRange,
  kScaleByGateRange,
  kNumDefects
};

extern const char* const kDefectNames[kNumDefects];

// Applies defect d to S (and maybe L's options); returns false if it does not
// apply to this layer.
bool apply_defect(int d, const Layer& L, NodeSetup* S, Rng& r);

// Random byte-level damage to a valid options buffer.
void mutate(std::vector<uint8_t>* b, Rng& r);

}  // namespace ccdrv
