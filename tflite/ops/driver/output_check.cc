// The output check (output_check.h).

#include "output_check.h"

#include <cstdio>
#include <string>
#include <vector>

#include "layer_file.h"
#include "reference.h"

namespace ccdrv {

namespace {

std::string shape_text(const std::vector<int>& shape) {
  std::string s = "[";
  for (int v : shape) s += std::to_string(v) + ",";
  return s + "]";
}

}  // namespace

int run_check(const char* path) {
  std::vector<Layer> layers;
  std::string err;
  if (!load_layers(path, &layers, &err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }
  Stats st;
  long failed = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    const Reference R = reference(L);
    std::string why;
    if (L.y_shape != R.shape)
      why = "output shape " + shape_text(L.y_shape) + " expected " + shape_text(R.shape);
    else
      why = compare(L, R, L.y_expected.data(), &st);
    if (!why.empty()) {
      std::printf("FAIL layer %zu (%s): %s\n", l, L.name.c_str(), why.c_str());
      ++failed;
    }
  }
  std::printf(
      "check: %zu layers, %ld values checked, %ld gates within rounding of the threshold, %ld NaN "
      "pre-activations turned into numbers by relu/relu6/hard_sigmoid\n",
      layers.size(), st.values_checked, st.ambiguous_blocks, st.nan_deviation);
  std::printf("%ld passed, %ld failed\n", static_cast<long>(layers.size()) - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace ccdrv
