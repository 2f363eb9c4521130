/* JNI bridge of the CondComp demo app: runs a .tflite model that contains the
 * CondComp custom ops with the standard LiteRT / TensorFlow Lite runtime.
 *
 * The runtime is libtensorflowlite_jni.so from the LiteRT AAR, used through
 * its C API; the custom ops (tflite/ops, compiled into this library) are
 * registered with TfLiteInterpreterOptionsAddCustomOp before the interpreter
 * is created. Builtin ops (and XNNPACK) work as usual.
 *
 * Java side: org.condcomp.demo.CondCompInterpreter.
 */
#include <jni.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __ANDROID__
#include <android/log.h>
#define LOGE(...) __android_log_print(ANDROID_LOG_ERROR, "CondComp", __VA_ARGS__)
#else
#define LOGE(...) fprintf(stderr, __VA_ARGS__)
#endif

#include "condcomp_c_api.h"

typedef struct {
  void* model_bytes; /* TfLiteModelCreate does not copy: must outlive the model */
  TfLiteModel* model;
  TfLiteInterpreterOptions* options;
  TfLiteInterpreter* interpreter;
  char error[512];
} Handle;

static void report(void* user_data, const char* format, va_list args) {
  Handle* h = (Handle*)user_data;
  vsnprintf(h->error, sizeof(h->error), format, args);
  LOGE("%s", h->error);
}

static void throw_state(JNIEnv* env, const char* what, const Handle* h) {
  char msg[700];
  snprintf(msg, sizeof(msg), "%s%s%s", what, h && h->error[0] ? ": " : "", h ? h->error : "");
  jclass cls = (*env)->FindClass(env, "java/lang/IllegalStateException");
  if (cls != NULL) (*env)->ThrowNew(env, cls, msg);
}

static void destroy(Handle* h) {
  if (h == NULL) return;
  if (h->interpreter) TfLiteInterpreterDelete(h->interpreter);
  if (h->options) TfLiteInterpreterOptionsDelete(h->options);
  if (h->model) TfLiteModelDelete(h->model);
  free(h->model_bytes);
  free(h);
}

JNIEXPORT jlong JNICALL Java_org_condcomp_demo_CondCompInterpreter_nativeCreate(
    JNIEnv* env, jclass cls, jobject model_buffer, jint num_threads) {
  (void)cls;
  const void* data = (*env)->GetDirectBufferAddress(env, model_buffer);
  const jlong size = (*env)->GetDirectBufferCapacity(env, model_buffer);
  if (data == NULL || size <= 0) {
    throw_state(env, "the model must be a non-empty direct ByteBuffer", NULL);
    return 0;
  }
  Handle* h = (Handle*)calloc(1, sizeof(Handle));
  if (h == NULL || (h->model_bytes = malloc((size_t)size)) == NULL) {
    free(h);
    throw_state(env, "out of memory", NULL);
    return 0;
  }
  memcpy(h->model_bytes, data, (size_t)size);
  h->model = TfLiteModelCreate(h->model_bytes, (size_t)size);
  if (h->model == NULL) {
    throw_state(env, "not a valid .tflite model", h);
    destroy(h);
    return 0;
  }
  h->options = TfLiteInterpreterOptionsCreate();
  TfLiteInterpreterOptionsSetNumThreads(h->options, num_threads > 0 ? num_threads : 1);
  TfLiteInterpreterOptionsSetErrorReporter(h->options, report, h);
  /* The two CondComp ops, version 1 (what tflite/convert.py writes). */
  TfLiteInterpreterOptionsAddCustomOp(h->options, CONDCOMP_GATED_DENSE_NAME,
                                      CondCompGatedDenseRegistration(), 1, 1);
  TfLiteInterpreterOptionsAddCustomOp(h->options, CONDCOMP_GATED_CONV2D_NAME,
                                      CondCompGatedConv2DRegistration(), 1, 1);
  h->interpreter = TfLiteInterpreterCreate(h->model, h->options);
  if (h->interpreter == NULL) {
    throw_state(env, "could not create the interpreter", h);
    destroy(h);
    return 0;
  }
  if (TfLiteInterpreterAllocateTensors(h->interpreter) != kTfLiteOk) {
    throw_state(env, "AllocateTensors failed", h);
    destroy(h);
    return 0;
  }
  return (jlong)(intptr_t)h;
}

static jintArray shape_of(JNIEnv* env, const TfLiteTensor* t) {
  const int32_t n = TfLiteTensorNumDims(t);
  jintArray out = (*env)->NewIntArray(env, n > 0 ? n : 0);
  if (out == NULL) return NULL;
  for (int32_t i = 0; i < n; ++i) {
    const jint d = TfLiteTensorDim(t, i);
    (*env)->SetIntArrayRegion(env, out, i, 1, &d);
  }
  return out;
}

JNIEXPORT jintArray JNICALL
Java_org_condcomp_demo_CondCompInterpreter_nativeInputShape(JNIEnv* env, jclass cls, jlong handle) {
  (void)cls;
  Handle* h = (Handle*)(intptr_t)handle;
  return shape_of(env, TfLiteInterpreterGetInputTensor(h->interpreter, 0));
}

JNIEXPORT jintArray JNICALL Java_org_condcomp_demo_CondCompInterpreter_nativeOutputShape(
    JNIEnv* env, jclass cls, jlong handle) {
  (void)cls;
  Handle* h = (Handle*)(intptr_t)handle;
  return shape_of(env, TfLiteInterpreterGetOutputTensor(h->interpreter, 0));
}

/* Runs input 0 -> output 0. `shape` is the input's shape (batch first); the
 * input is resized (and tensors reallocated) when it changes. */
JNIEXPORT jfloatArray JNICALL Java_org_condcomp_demo_CondCompInterpreter_nativeRun(
    JNIEnv* env, jclass cls, jlong handle, jfloatArray input, jintArray shape) {
  (void)cls;
  Handle* h = (Handle*)(intptr_t)handle;
  h->error[0] = 0;
  const jsize rank = (*env)->GetArrayLength(env, shape);
  if (rank < 1 || rank > 8) {
    throw_state(env, "input shape must have 1 to 8 dimensions", NULL);
    return NULL;
  }
  jint dims[8];
  (*env)->GetIntArrayRegion(env, shape, 0, rank, dims);
  TfLiteTensor* in = TfLiteInterpreterGetInputTensor(h->interpreter, 0);
  int same = TfLiteTensorNumDims(in) == rank;
  for (jsize i = 0; same && i < rank; ++i) same = TfLiteTensorDim(in, i) == dims[i];
  if (!same) {
    if (TfLiteInterpreterResizeInputTensor(h->interpreter, 0, dims, rank) != kTfLiteOk ||
        TfLiteInterpreterAllocateTensors(h->interpreter) != kTfLiteOk) {
      throw_state(env, "resizing the input failed", h);
      return NULL;
    }
    in = TfLiteInterpreterGetInputTensor(h->interpreter, 0);
  }
  if (TfLiteTensorType(in) != kTfLiteFloat32) {
    throw_state(env, "input 0 is not float32", NULL);
    return NULL;
  }
  const jsize n = (*env)->GetArrayLength(env, input);
  if ((size_t)n * sizeof(float) != TfLiteTensorByteSize(in)) {
    throw_state(env, "input length does not match its shape", NULL);
    return NULL;
  }
  jfloat* src = (*env)->GetPrimitiveArrayCritical(env, input, NULL);
  if (src == NULL) return NULL;
  const TfLiteStatus copied = TfLiteTensorCopyFromBuffer(in, src, (size_t)n * sizeof(float));
  (*env)->ReleasePrimitiveArrayCritical(env, input, src, JNI_ABORT);
  if (copied != kTfLiteOk) {
    throw_state(env, "copying the input failed", h);
    return NULL;
  }
  if (TfLiteInterpreterInvoke(h->interpreter) != kTfLiteOk) {
    throw_state(env, "Invoke failed", h);
    return NULL;
  }
  const TfLiteTensor* out = TfLiteInterpreterGetOutputTensor(h->interpreter, 0);
  const size_t bytes = TfLiteTensorByteSize(out);
  jfloatArray result = (*env)->NewFloatArray(env, (jsize)(bytes / sizeof(float)));
  if (result == NULL) return NULL;
  jfloat* dst = (*env)->GetPrimitiveArrayCritical(env, result, NULL);
  if (dst == NULL) return NULL;
  const TfLiteStatus status = TfLiteTensorCopyToBuffer(out, dst, bytes);
  (*env)->ReleasePrimitiveArrayCritical(env, result, dst, 0);
  if (status != kTfLiteOk) {
    throw_state(env, "copying the output failed", h);
    return NULL;
  }
  return result;
}

JNIEXPORT jstring JNICALL Java_org_condcomp_demo_CondCompInterpreter_nativeKernelIsa(JNIEnv* env,
                                                                                     jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, CondCompKernelIsa());
}

JNIEXPORT void JNICALL Java_org_condcomp_demo_CondCompInterpreter_nativeClose(JNIEnv* env,
                                                                              jclass cls,
                                                                              jlong handle) {
  (void)env;
  (void)cls;
  destroy((Handle*)(intptr_t)handle);
}
