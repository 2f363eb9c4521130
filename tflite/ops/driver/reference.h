// The float64 reference of the CondComp ops (docs/architecture.md), written
// independently of the code under test, and the one rule by which every
// fuzzer and check of the driver compares an op's output with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layer.h"

namespace ccdrv {

// Activation names in the order of CC_ACT_* (condcomp_kernels.h).
constexpr int kNumActs = 16;
extern const char* const kActNames[kNumActs];
// An activation from its name: the names above and the aliases the op
// accepts (None, swish, hard_swish); -1 for any other.
int act_from_name(const std::string& name);

// Keras 3 (TensorFlow backend) activations in double precision, NaN in -> NaN out.
double act_ref(int a, double v);
// Activations whose kernel maps a NaN pre-activation to a number (Keras gives NaN).
bool nan_clamping_act(int a);

// A reference output: the pre-activation z (double) and the bound `err` on
// the float kernel's rounding error of z.
struct RefVal {
  double z;
  double err;
};

enum Gate { kOff = 0, kOn = 1, kAmbiguous = 2 };

// Decision sigmoid(z) > thr as the kernel rounds it (sigmoid in double, then
// to float), for every z in [z - err, z + err]: kOn/kOff when all agree.
Gate gate_ref(double z, double err, float thr);
// The top_k rule for logits z +- err (see reference.cc).
void top_k_ref(const std::vector<double>& z, const std::vector<double>& err, int k, uint8_t* out);
// A value as the int8 op quantizes it (condcomp_kernels.h): q =
// clamp(round-half-even(x * k), -127, 127) in double.
int quantize_value_ref(float x, double k);
// Relative rounding bound of a float dot product of n terms (sequential or
// blocked summation, with or without FMA), generous.
double dot_err(long n, double abs_sum);

// The counters of a run: the comparison's, and the fuzzers' outcomes.
struct Stats {
  long cases = 0, passed = 0, failed = 0;
  long expected_errors = 0;   // invalid inputs rejected as they should be
  long ambiguous_blocks = 0;  // gate within rounding of the threshold
  long nan_deviation = 0;     // NaN pre-activation turned into a number
  long values_checked = 0;
  long mutated_ok = 0, mutated_err = 0;
  long int8_cases = 0;         // dynamic-range int8 layers among the cases
  long int8_conv_cases = 0;    // ... of which convolutions
  long int8_static_cases = 0;  // ... with static activation scales
  long head_cases = 0;         // valid dense layers also run with a folded output layer
};

// Checks one output value y against the reference. Returns "" or a reason.
// scale_by_gate: the block's gate value lies in [glo, ghi] (1, 1: unscaled).
std::string check_value(float y, const RefVal& r, int act, Stats* st, double glo = 1.0,
                        double ghi = 1.0);

// TF output size and leading pad (independent of cc_conv_output_size).
void conv_geometry(int in, int k, int s, int d, bool same, int* out, int* pad);

struct Reference {
  std::vector<RefVal> v;         // per output element (before the gate value)
  std::vector<uint8_t> gate;     // per (example, block): Gate
  std::vector<double> glo, ghi;  // scale_by_gate: per (example, block) gate value bounds
  std::vector<int> shape;
};

// The reference outputs of layer L (its x, weights and attributes).
Reference reference(const Layer& L);

// True iff example e's input holds a NaN or +-Inf: then its whole output row
// must be NaN (keras_condcomp.layers.nonfinite_rows_to_nan).
bool example_nonfinite(const Layer& L, int e);

// Compares an op's output y (shape R.shape) with the reference. Returns ""
// or the first mismatch.
std::string compare(const Layer& L, const Reference& R, const float* y, Stats* st);

}  // namespace ccdrv
