// One node of a CondComp op run through its TfLiteRegistration
// (Init/Prepare/Invoke/Free) on the mock runtime: the node's tensors, types
// and FlexBuffers options, valid ones for a layer, and the outcome.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "condcomp_tflite_ops.h"
#include "flexbuf_writer.h"
#include "layer.h"
#include "rng.h"

namespace ccdrv {

// The layer's attributes as the op's FlexBuffers options map.
std::vector<ccfx::Entry> layer_options(const Layer& L);
inline std::vector<int> x_shape(const Layer& L) {
  return L.op == 0 ? std::vector<int>{L.B, L.D} : std::vector<int>{L.B, L.H, L.W, L.D};
}
inline std::vector<int> kernel_shape(const Layer& L) {
  return L.op == 0 ? std::vector<int>{L.K, L.D, L.bs}
                   : std::vector<int>{L.K, L.KH, L.KW, L.D, L.bs};
}

// One run of a node through Init/Prepare/(Invoke)/Free.
struct OpRun {
  bool prepared = false, invoked = false;
  TfLiteStatus prepare_status = kTfLiteError, invoke_status = kTfLiteError;
  std::string error;
  std::vector<int> out_shape;
  std::vector<float> y;
};

// Tensor indices: 0 x, 1 kernel, 2 bias, 3 policy kernel, 4 policy bias, 5 output.
struct NodeSetup {
  std::vector<int> inputs = {0, 1, 2, 3, 4};
  std::vector<int> outputs = {5};
  std::vector<std::vector<int>> shapes;  // 6 shapes
  std::vector<TfLiteType> types = std::vector<TfLiteType>(6, kTfLiteFloat32);
  std::vector<uint8_t> options;
  int threads = 1;
  // $CONDCOMP_PARALLEL_MIN_BYTES for the op: "0" splits even tiny work
  // between the threads (the parallel path), "" keeps the default threshold.
  const char* parallel_min_bytes = "";
  bool explicit_resize = false;
  bool null_empty = false;
  std::vector<int> reshape_x;      // second Prepare/Invoke with another x shape
  std::vector<float> input_scale;  // tensor 7's values (the layer's, or a defect's)
  int head_tensor = -1;            // head_kernel's tensor (head_bias's is the next), or -1
};

// Runs L through the node described by S; with L2, a second Prepare/Invoke
// with L2's x (of shape S.reshape_x).
OpRun run_op(const Layer& L, const NodeSetup& S, const Layer* L2 = nullptr);

// A valid node for L, in a random valid encoding (indirect scalars, narrower
// maps, thread counts, resize paths).
NodeSetup valid_setup(const Layer& L, Rng& r);

}  // namespace ccdrv
