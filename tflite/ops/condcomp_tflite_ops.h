/* Public entry points of libcondcomp_tflite_ops (C ABI). */
#ifndef CONDCOMP_TFLITE_OPS_H_
#define CONDCOMP_TFLITE_OPS_H_

#include <stdint.h>

#include "tflite_c_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CONDCOMP_EXPORT __attribute__((visibility("default")))
#else
#define CONDCOMP_EXPORT
#endif

#define CONDCOMP_GATED_DENSE_NAME "CondCompGatedDense"
#define CONDCOMP_GATED_CONV2D_NAME "CondCompGatedConv2D"

/* Registrations (version 1) for TfLiteInterpreterOptionsAddCustomOp(options,
 * CONDCOMP_GATED_DENSE_NAME, CondCompGatedDenseRegistration(), 1, 1) or
 * tflite::MutableOpResolver::AddCustom. */
CONDCOMP_EXPORT const TfLiteRegistration* CondCompGatedDenseRegistration(void);
CONDCOMP_EXPORT const TfLiteRegistration* CondCompGatedConv2DRegistration(void);

/* Desktop Python registerer for tf.lite.Interpreter(custom_op_registerers=[...]):
 * `resolver` is the tflite::MutableOpResolver* the interpreter passes. Adds both
 * ops through the AddCustom of the TensorFlow library loaded in the process.
 * Defined in condcomp_register_tf.c (not built for Android). */
CONDCOMP_EXPORT void CondCompRegisterOps(void* resolver);
/* 1 if CondCompRegisterOps can find tflite::MutableOpResolver::AddCustom. */
CONDCOMP_EXPORT int CondCompCanRegister(void);

/* Process-wide counters: multiply-adds done by the block kernels, invocations,
 * active and total (example, block) pairs. */
CONDCOMP_EXPORT void CondCompGetStats(uint64_t* macs, uint64_t* invokes, uint64_t* active_blocks,
                                      uint64_t* total_blocks);
CONDCOMP_EXPORT void CondCompResetStats(void);
/* Which code path the kernels use on this CPU. */
CONDCOMP_EXPORT const char* CondCompKernelIsa(void);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_TFLITE_OPS_H_ */
