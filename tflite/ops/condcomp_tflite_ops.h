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
/* Profile of the CondComp nodes (benchmarks/profile_invoke.py). Enable(1) clears it and
 * starts recording, Enable(0) clears and stops; slots are numbered in the
 * order the nodes first run while recording. Times are CLOCK_MONOTONIC ns
 * summed over invokes. Get copies slot `slot` and returns 1, or returns 0. */
#define CONDCOMP_PROFILE_SLOTS 64
typedef struct {
  int32_t op;            /* 0 dense, 1 conv */
  int32_t quantized;     /* int8 kernel */
  int32_t in_dim;        /* D (dense) or input channels (conv) */
  int32_t num_blocks;    /* K */
  int32_t block_size;    /* bs */
  int32_t in_block_size; /* ibs */
  int32_t top_k;         /* 0: threshold rule */
  int32_t taps;          /* kernel_h * kernel_w (1 for dense) */
  int32_t tiles_exact;   /* K <= 64 and in_dim / ibs <= 64: tile counts are exact */
  int32_t head_units;    /* dense: the folded output layer's width, or 0 */
  uint64_t tile_bytes;   /* bytes of one (output block, input block) weight tile */
  uint64_t invokes, examples;
  uint64_t gate_ns;        /* phase 1: input checks, policy product, int8 quantization, masks */
  uint64_t block_ns;       /* phase 2: weight-tile loops and activation */
  uint64_t macs;           /* multiply-adds of phase 2 */
  uint64_t tile_reads;     /* sum over invokes of the distinct tiles read */
  uint64_t policy_bytes;   /* policy kernel bytes read (rows of non-zero input blocks) */
  uint64_t tiles_seen[64]; /* bit i of tiles_seen[j]: tile (j, i) read since Enable */
  uint64_t head_ns;        /* the folded output layer (head_units), after phase 2 */
  uint64_t head_macs;      /* its multiply-adds */
} CondCompProfileEntry;
CONDCOMP_EXPORT void CondCompProfileEnable(int on);
CONDCOMP_EXPORT int CondCompProfileCount(void);
CONDCOMP_EXPORT int CondCompProfileGet(int slot, CondCompProfileEntry* out);
/* Which code paths the kernels use on this CPU: "<float path>; int8: <int8 path>". */
CONDCOMP_EXPORT const char* CondCompKernelIsa(void);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_TFLITE_OPS_H_ */
