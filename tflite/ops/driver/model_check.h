// The model check (`model FILE [--reps R]`): the gated layers of a Keras
// model (a CCLAYER1 file from tflite/arm/export_layers.py) through the glue,
// compared with the reference and with Keras' outputs, and timed through
// the kernels.
#pragma once

namespace ccdrv {

// Returns the exit status: 0 all layers match, 1 a mismatch, 2 a bad file.
int run_model(const char* path);

}  // namespace ccdrv
