/* Activations of the gated layers' outputs (Keras names and semantics),
 * applied in place after each computed output block (cc_apply_activation,
 * condcomp_kernels.h). Scalar C, the same on every CPU.
 */
#include "condcomp_kernels.h"

#include <math.h>
#include <string.h>

static const struct {
  const char* name;
  int id;
} kActivationNames[] = {
    {"linear", CC_ACT_LINEAR},
    {"None", CC_ACT_LINEAR},
    {"relu", CC_ACT_RELU},
    {"relu6", CC_ACT_RELU6},
    {"sigmoid", CC_ACT_SIGMOID},
    {"tanh", CC_ACT_TANH},
    {"elu", CC_ACT_ELU},
    {"selu", CC_ACT_SELU},
    {"softplus", CC_ACT_SOFTPLUS},
    {"softsign", CC_ACT_SOFTSIGN},
    {"silu", CC_ACT_SILU},
    {"swish", CC_ACT_SILU},
    {"gelu", CC_ACT_GELU},
    {"leaky_relu", CC_ACT_LEAKY_RELU},
    {"hard_sigmoid", CC_ACT_HARD_SIGMOID},
    {"hard_silu", CC_ACT_HARD_SILU},
    {"hard_swish", CC_ACT_HARD_SILU},
    {"mish", CC_ACT_MISH},
    {"exponential", CC_ACT_EXPONENTIAL},
};

int cc_activation_from_name(const char* name, size_t len) {
  if (name == NULL) return -1;
  for (size_t i = 0; i < sizeof(kActivationNames) / sizeof(kActivationNames[0]); ++i) {
    const char* n = kActivationNames[i].name;
    if (strlen(n) == len && memcmp(n, name, len) == 0) return kActivationNames[i].id;
  }
  return -1;
}

const char* cc_activation_names(void) {
  return "linear, relu, relu6, sigmoid, tanh, elu, selu, softplus, softsign, silu (swish), "
         "gelu, leaky_relu, hard_sigmoid, hard_silu (hard_swish), mish, exponential";
}

static float softplusf(float v) {
  /* log(1 + exp(v)) without overflow */
  return v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v));
}

/* relu, NaN to 0 as Keras' relu on the CPU backends gives it. */
static inline void relu_values(float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
}

void cc_apply_activation(int act, float* v, size_t n) {
  size_t i;
  switch (act) {
    case CC_ACT_LINEAR:
      return;
    case CC_ACT_RELU:
      relu_values(v, n);
      return;
    case CC_ACT_RELU6:
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? (v[i] < 6.0f ? v[i] : 6.0f) : 0.0f;
      return;
    case CC_ACT_SIGMOID:
      for (i = 0; i < n; ++i) v[i] = 1.0f / (1.0f + expf(-v[i]));
      return;
    case CC_ACT_TANH:
      for (i = 0; i < n; ++i) v[i] = tanhf(v[i]);
      return;
    case CC_ACT_ELU:
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : expm1f(v[i]);
      return;
    case CC_ACT_SELU: {
      const float scale = 1.05070098735548049342f, alpha = 1.67326324235437728482f;
      for (i = 0; i < n; ++i) v[i] = scale * (v[i] > 0.0f ? v[i] : alpha * expm1f(v[i]));
      return;
    }
    case CC_ACT_SOFTPLUS:
      for (i = 0; i < n; ++i) v[i] = softplusf(v[i]);
      return;
    case CC_ACT_SOFTSIGN:
      for (i = 0; i < n; ++i) v[i] = v[i] / (1.0f + fabsf(v[i]));
      return;
    case CC_ACT_SILU:
      for (i = 0; i < n; ++i) v[i] = v[i] / (1.0f + expf(-v[i]));
      return;
    case CC_ACT_GELU: /* Keras default: exact (erf) form */
      for (i = 0; i < n; ++i) v[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.70710678118654752f));
      return;
    case CC_ACT_LEAKY_RELU: /* keras.activations.leaky_relu default slope 0.2 */
      for (i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.2f * v[i];
      return;
    case CC_ACT_HARD_SIGMOID: /* Keras 3: relu6(x + 3) / 6 */
      for (i = 0; i < n; ++i) {
        float t = v[i] + 3.0f;
        t = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
        v[i] = t / 6.0f;
      }
      return;
    case CC_ACT_HARD_SILU:
      for (i = 0; i < n; ++i) {
        float t = v[i] + 3.0f;
        t = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
        v[i] = v[i] * t / 6.0f;
      }
      return;
    case CC_ACT_MISH:
      for (i = 0; i < n; ++i) v[i] = v[i] * tanhf(softplusf(v[i]));
      return;
    case CC_ACT_EXPONENTIAL:
      for (i = 0; i < n; ++i) v[i] = expf(v[i]);
      return;
    default:
      return; /* validated by the caller */
  }
}

void cc_apply_activation_rows(int act, float* v, size_t rows, size_t n, size_t stride) {
  if (act == CC_ACT_LINEAR) return;
  /* relu, the common one, without a call per row */
  if (act == CC_ACT_RELU) {
    for (size_t r = 0; r < rows; ++r) relu_values(v + r * stride, n);
    return;
  }
  for (size_t r = 0; r < rows; ++r) cc_apply_activation(act, v + r * stride, n);
}
