// Random valid layers for the fuzzers: shapes, attributes, weights and
// inputs (zero input blocks, NaN / +-Inf / huge values), made int8.
#pragma once

#include <cstddef>
#include <vector>

#include "layer.h"
#include "reference.h"
#include "rng.h"

namespace ccdrv {

void fill_normal(Rng& r, std::vector<float>& v, size_t n, double scale);

// Random valid layer. `special`: NaN / +-Inf / huge values injected in x.
Layer random_layer(Rng& r, bool conv, bool special);

// Makes a layer dynamic-range int8: symmetric per-output-unit weights (the
// rule of keras_condcomp.converter.quantize_kernel, written again here).
void quantize_int8(Layer* L);

// Makes an int8 layer's activation scales static (see random_layer.cc).
void static_scales(Layer* L, Rng& r);

// quantize_int8, then static_scales half the time; counted in `st`.
void make_int8(Layer* L, Rng& r, Stats* st);

}  // namespace ccdrv
