/* Minimal declarations of the TensorFlow Lite C ABI used by the CondComp custom ops.
 *
 * pip TensorFlow / ai-edge-litert ship no TFLite headers, so this file declares,
 * by hand, only the parts of the stable-ish C ABI ("common.h": TfLiteContext,
 * TfLiteNode, TfLiteTensor, TfLiteRegistration) that the kernels touch. Field
 * order and types follow tensorflow/lite/core/c/common.h as of TF 2.21 (fields
 * are only ever appended there, never reordered). Fields we never read are kept
 * with their real types so that the offsets of the ones we do read are right;
 * the _Static_asserts below pin those offsets for LP64 targets (x86-64, aarch64),
 * and the glue additionally checks at run time that consecutive tensors are
 * sizeof(TfLiteTensor) apart (see cc_check_abi in condcomp_tflite_ops.c).
 *
 * If you build against a real TFLite tree, define CONDCOMP_USE_TFLITE_HEADERS and
 * put tensorflow/lite/core/c/common.h on the include path instead.
 */
#ifndef CONDCOMP_TFLITE_C_ABI_H_
#define CONDCOMP_TFLITE_C_ABI_H_

#ifdef CONDCOMP_USE_TFLITE_HEADERS
#include "tensorflow/lite/core/c/common.h"
#else

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,
  kTfLiteDelegateError = 2,
  kTfLiteApplicationError = 3,
} TfLiteStatus;

/* Only the values we compare against; the enum is an int in the ABI. */
typedef enum TfLiteType {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
  kTfLiteFloat16 = 10,
  kTfLiteFloat64 = 11,
} TfLiteType;

typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo,
  kTfLiteArenaRw,
  kTfLiteArenaRwPersistent,
  kTfLiteDynamic,
  kTfLitePersistentRo,
  kTfLiteCustom,
  kTfLiteVariantObject,
  kTfLiteNonCpu,
} TfLiteAllocationType;

#define kTfLiteOptionalTensor (-1)

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct TfLiteQuantization {
  int type; /* TfLiteQuantizationType, an int-sized enum */
  void* params;
} TfLiteQuantization;

struct TfLiteDelegate;
struct TfLiteRegistration;
struct TfLiteContext;

typedef struct TfLiteTensor {
  TfLiteType type;
  void* data; /* TfLitePtrUnion: a union of pointers, pointer-sized */
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  struct TfLiteDelegate* delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;
  bool might_have_side_effect;
} TfLiteNode;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context, TfLiteIntArray** plan);
  TfLiteTensor* tensors;
  void* impl_;
  /* Takes ownership of new_size (allocated with TfLiteIntArrayCreate). */
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext*, TfLiteTensor* tensor,
                               TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext*, int tensors_to_add, int* first_new_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext*, int node_index, TfLiteNode** node,
                                         struct TfLiteRegistration** registration);
  /* Takes the registration by value: sizeof(TfLiteRegistration) is part of the ABI. */
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext*,
                                                        struct TfLiteRegistration registration,
                                                        const TfLiteIntArray* nodes_to_replace,
                                                        struct TfLiteDelegate* delegate);
  int recommended_num_threads;
  void* GetExternalContext;
  void* SetExternalContext;
  bool allow_fp32_relax_to_fp16;
  void* profiler;
  void* (*AllocatePersistentBuffer)(struct TfLiteContext* ctx, size_t bytes);
  TfLiteStatus (*AllocateBufferForEval)(struct TfLiteContext* ctx, size_t bytes, void** ptr);
  TfLiteStatus (*RequestScratchBufferInArena)(struct TfLiteContext* ctx, size_t bytes,
                                              int* buffer_idx);
  void* (*GetScratchBuffer)(struct TfLiteContext* ctx, int buffer_idx);
  /* Copies `shape`, unlike ResizeTensor: no TfLiteIntArrayCreate needed. */
  TfLiteStatus (*ResizeTensorExplicit)(struct TfLiteContext* ctx, TfLiteTensor* tensor, int dims,
                                       const int* shape);
  void* PreviewDelegatePartitioning;
  TfLiteTensor* (*GetTensor)(const struct TfLiteContext* context, int tensor_idx);
  /* Later fields are never touched. */
} TfLiteContext;

typedef struct TfLiteOperator TfLiteOperator;

typedef struct TfLiteRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const TfLiteContext* context, const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  TfLiteOperator* registration_external;
  void* (*async_kernel)(TfLiteContext* context, TfLiteNode* node);
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef int TfLiteBufferHandle;

typedef enum TfLiteDelegateFlags {
  kTfLiteDelegateFlagsNone = 0,
  kTfLiteDelegateFlagsAllowDynamicTensors = 1,
} TfLiteDelegateFlags;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, struct TfLiteDelegate* delegate);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext* context, struct TfLiteDelegate* delegate,
                                       TfLiteBufferHandle buffer_handle, TfLiteTensor* tensor);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext* context, struct TfLiteDelegate* delegate,
                                     TfLiteBufferHandle buffer_handle, TfLiteTensor* tensor);
  void (*FreeBufferHandle)(TfLiteContext* context, struct TfLiteDelegate* delegate,
                           TfLiteBufferHandle* handle);
  int64_t flags;
  void* opaque_delegate_builder; /* struct TfLiteOpaqueDelegateBuilder*; must stay NULL */
} TfLiteDelegate;

/* What a delegate kernel's init receives as `buffer`. */
typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
} TfLiteDelegateParams;

/* BuiltinOperator_CUSTOM in the schema. */
#define CONDCOMP_BUILTIN_CUSTOM 32

#if defined(__LP64__) || defined(_LP64)
#ifdef __cplusplus
#define CC_STATIC_ASSERT static_assert
#else
#define CC_STATIC_ASSERT _Static_assert
#endif
/* Offsets from TF 2.21 common.h on LP64 (x86-64 / aarch64). */
CC_STATIC_ASSERT(offsetof(TfLiteTensor, type) == 0, "TfLiteTensor.type");
CC_STATIC_ASSERT(offsetof(TfLiteTensor, data) == 8, "TfLiteTensor.data");
CC_STATIC_ASSERT(offsetof(TfLiteTensor, dims) == 16, "TfLiteTensor.dims");
CC_STATIC_ASSERT(offsetof(TfLiteTensor, allocation_type) == 32, "TfLiteTensor.allocation_type");
CC_STATIC_ASSERT(offsetof(TfLiteTensor, bytes) == 40, "TfLiteTensor.bytes");
CC_STATIC_ASSERT(offsetof(TfLiteTensor, name) == 56, "TfLiteTensor.name");
CC_STATIC_ASSERT(offsetof(TfLiteTensor, quantization) == 80, "TfLiteTensor.quantization");
CC_STATIC_ASSERT(sizeof(TfLiteTensor) == 112, "sizeof(TfLiteTensor)");
CC_STATIC_ASSERT(offsetof(TfLiteNode, inputs) == 0, "TfLiteNode.inputs");
CC_STATIC_ASSERT(offsetof(TfLiteNode, outputs) == 8, "TfLiteNode.outputs");
CC_STATIC_ASSERT(offsetof(TfLiteNode, user_data) == 32, "TfLiteNode.user_data");
CC_STATIC_ASSERT(offsetof(TfLiteNode, custom_initial_data) == 48, "TfLiteNode.custom_initial_data");
CC_STATIC_ASSERT(offsetof(TfLiteNode, custom_initial_data_size) == 56,
                 "TfLiteNode.custom_initial_data_size");
CC_STATIC_ASSERT(offsetof(TfLiteContext, tensors_size) == 0, "TfLiteContext.tensors_size");
CC_STATIC_ASSERT(offsetof(TfLiteContext, tensors) == 16, "TfLiteContext.tensors");
CC_STATIC_ASSERT(offsetof(TfLiteContext, ResizeTensor) == 32, "TfLiteContext.ResizeTensor");
CC_STATIC_ASSERT(offsetof(TfLiteContext, ReportError) == 40, "TfLiteContext.ReportError");
CC_STATIC_ASSERT(offsetof(TfLiteContext, GetExecutionPlan) == 8, "TfLiteContext.GetExecutionPlan");
CC_STATIC_ASSERT(offsetof(TfLiteContext, GetNodeAndRegistration) == 56,
                 "TfLiteContext.GetNodeAndRegistration");
CC_STATIC_ASSERT(offsetof(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels) == 64,
                 "TfLiteContext.ReplaceNodeSubsetsWithDelegateKernels");
CC_STATIC_ASSERT(offsetof(TfLiteDelegate, Prepare) == 8, "TfLiteDelegate.Prepare");
CC_STATIC_ASSERT(offsetof(TfLiteDelegate, flags) == 40, "TfLiteDelegate.flags");
CC_STATIC_ASSERT(sizeof(TfLiteDelegate) == 56, "sizeof(TfLiteDelegate)");
CC_STATIC_ASSERT(offsetof(TfLiteDelegateParams, nodes_to_replace) == 8,
                 "TfLiteDelegateParams.nodes_to_replace");
CC_STATIC_ASSERT(offsetof(TfLiteContext, recommended_num_threads) == 72,
                 "TfLiteContext.recommended_num_threads");
CC_STATIC_ASSERT(offsetof(TfLiteContext, ResizeTensorExplicit) == 144,
                 "TfLiteContext.ResizeTensorExplicit");
CC_STATIC_ASSERT(offsetof(TfLiteContext, GetTensor) == 160, "TfLiteContext.GetTensor");
CC_STATIC_ASSERT(offsetof(TfLiteRegistration, builtin_code) == 40,
                 "TfLiteRegistration.builtin_code");
CC_STATIC_ASSERT(offsetof(TfLiteRegistration, custom_name) == 48, "TfLiteRegistration.custom_name");
CC_STATIC_ASSERT(offsetof(TfLiteRegistration, version) == 56, "TfLiteRegistration.version");
CC_STATIC_ASSERT(offsetof(TfLiteRegistration, registration_external) == 64,
                 "TfLiteRegistration.registration_external");
CC_STATIC_ASSERT(sizeof(TfLiteRegistration) == 88, "sizeof(TfLiteRegistration)");
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CONDCOMP_USE_TFLITE_HEADERS */
#endif /* CONDCOMP_TFLITE_C_ABI_H_ */
