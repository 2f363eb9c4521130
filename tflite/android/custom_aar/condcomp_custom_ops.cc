// Route B of tflite/android/README.md: a custom LiteRT/TensorFlow Lite AAR that
// has the CondComp ops built in, so the stock Java `Interpreter` runs
// CondComp models with no JNI code in the app. From a TensorFlow source tree
// (configured for Android with ./configure), build_aar.sh with
// --tflite_custom_ops_srcs= this file and the `sources` and `headers` of
// tflite/ops/build.txt, comma-separated (the command: Route B of
// tflite/android/README.md).
//
// build_aar.sh generates a registration file from the model's op list that
// calls tflite::ops::custom::Register_<NAME>() for each custom op, NAME being
// the op name with "_" before each lower-to-upper case change, upper-cased
// (tensorflow/lite/tools/gen_op_registration.cc): CondCompGatedDense ->
// COND_COMP_GATED_DENSE, CondCompGatedConv2D -> COND_COMP_GATED_CONV2D.
#include "tensorflow/lite/core/c/common.h"

extern "C" {
// Defined in tflite/ops/condcomp_tflite_ops.c (C linkage; same struct layout,
// the op library checks it against TFLite's at compile time and at run time).
const TfLiteRegistration* CondCompGatedDenseRegistration(void);
const TfLiteRegistration* CondCompGatedConv2DRegistration(void);
}

namespace tflite {
namespace ops {
namespace custom {

TfLiteRegistration* Register_COND_COMP_GATED_DENSE() {
  return const_cast<TfLiteRegistration*>(CondCompGatedDenseRegistration());
}

TfLiteRegistration* Register_COND_COMP_GATED_CONV2D() {
  return const_cast<TfLiteRegistration*>(CondCompGatedConv2DRegistration());
}

}  // namespace custom
}  // namespace ops
}  // namespace tflite
