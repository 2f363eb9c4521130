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

/* The ops as a TFLite delegate that claims every CondComp node (desktop
 * runtimes: LiteRT's and tf.lite's `load_delegate(path)` call the
 * tflite_plugin_* entry points). Defined in condcomp_delegate.c. */
CONDCOMP_EXPORT TfLiteDelegate* CondCompDelegateCreate(void);
CONDCOMP_EXPORT void CondCompDelegateDelete(TfLiteDelegate* delegate);
CONDCOMP_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values,
                                                              size_t num_options,
                                                              void (*report_error)(const char*));
CONDCOMP_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate);

/* Process-wide counters: multiply-adds done by the block kernels, invocations,
 * active and total (example, block) pairs. */
CONDCOMP_EXPORT void CondCompGetStats(uint64_t* macs, uint64_t* invokes, uint64_t* active_blocks,
                                      uint64_t* total_blocks);
CONDCOMP_EXPORT void CondCompResetStats(void);
/* Which code paths the kernels use on this CPU: "<float path>; int8: <int8 path>". */
CONDCOMP_EXPORT const char* CondCompKernelIsa(void);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_TFLITE_OPS_H_ */
