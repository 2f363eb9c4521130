/* The part of the TensorFlow Lite / LiteRT C API (tensorflow/lite/c/c_api.h and
 * c_api_experimental.h) that condcomp_jni.c calls, declared here so that the
 * JNI library does not need the AAR's headers (some AAR releases ship an
 * incomplete set, e.g. TF 2.16.1). These functions are exported by
 * libtensorflowlite_jni.so of the AAR (its version script exports TfLite*);
 * the declarations follow the stable C API. TfLiteStatus, TfLiteTensor and
 * TfLiteRegistration come from tflite/ops/tflite_c_abi.h (the op library's
 * view of the same ABI); TfLiteTensor is only used through pointers here.
 */
#ifndef CONDCOMP_C_API_H_
#define CONDCOMP_C_API_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "condcomp_tflite_ops.h" /* CondComp*Registration(), tflite_c_abi.h types */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TfLiteModel TfLiteModel;
typedef struct TfLiteInterpreterOptions TfLiteInterpreterOptions;
typedef struct TfLiteInterpreter TfLiteInterpreter;

/* c_api.h */
const char* TfLiteVersion(void);
TfLiteModel* TfLiteModelCreate(const void* model_data, size_t model_size);
void TfLiteModelDelete(TfLiteModel* model);
TfLiteInterpreterOptions* TfLiteInterpreterOptionsCreate(void);
void TfLiteInterpreterOptionsDelete(TfLiteInterpreterOptions* options);
void TfLiteInterpreterOptionsSetNumThreads(TfLiteInterpreterOptions* options, int32_t num_threads);
void TfLiteInterpreterOptionsSetErrorReporter(TfLiteInterpreterOptions* options,
                                              void (*reporter)(void* user_data, const char* format,
                                                               va_list args),
                                              void* user_data);
TfLiteInterpreter* TfLiteInterpreterCreate(const TfLiteModel* model,
                                           const TfLiteInterpreterOptions* optional_options);
void TfLiteInterpreterDelete(TfLiteInterpreter* interpreter);
int32_t TfLiteInterpreterGetInputTensorCount(const TfLiteInterpreter* interpreter);
TfLiteTensor* TfLiteInterpreterGetInputTensor(const TfLiteInterpreter* interpreter,
                                              int32_t input_index);
TfLiteStatus TfLiteInterpreterResizeInputTensor(TfLiteInterpreter* interpreter, int32_t input_index,
                                                const int* input_dims, int32_t input_dims_size);
TfLiteStatus TfLiteInterpreterAllocateTensors(TfLiteInterpreter* interpreter);
TfLiteStatus TfLiteInterpreterInvoke(TfLiteInterpreter* interpreter);
int32_t TfLiteInterpreterGetOutputTensorCount(const TfLiteInterpreter* interpreter);
const TfLiteTensor* TfLiteInterpreterGetOutputTensor(const TfLiteInterpreter* interpreter,
                                                     int32_t output_index);
TfLiteType TfLiteTensorType(const TfLiteTensor* tensor);
int32_t TfLiteTensorNumDims(const TfLiteTensor* tensor);
int32_t TfLiteTensorDim(const TfLiteTensor* tensor, int32_t dim_index);
size_t TfLiteTensorByteSize(const TfLiteTensor* tensor);
TfLiteStatus TfLiteTensorCopyFromBuffer(TfLiteTensor* tensor, const void* input_data,
                                        size_t input_data_size);
TfLiteStatus TfLiteTensorCopyToBuffer(const TfLiteTensor* output_tensor, void* output_data,
                                      size_t output_data_size);

/* c_api_experimental.h: the interpreter copies *registration; `name` must
 * outlive the options (string literals here). */
void TfLiteInterpreterOptionsAddCustomOp(TfLiteInterpreterOptions* options, const char* name,
                                         const TfLiteRegistration* registration,
                                         int32_t min_version, int32_t max_version);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_C_API_H_ */
