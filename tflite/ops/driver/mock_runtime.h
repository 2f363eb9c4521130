// A mock TFLite runtime: the TfLiteContext the CondComp glue uses, over
// tensors whose buffers are separate exact-size heap blocks (so ASan sees
// any overrun).
#pragma once

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "condcomp_tflite_ops.h"

namespace ccdrv {

struct MockRuntime {
  TfLiteContext ctx;  // first member: ReportError casts back
  std::vector<TfLiteTensor> tensors;
  std::string error;
  int resize_calls = 0;

  explicit MockRuntime(int n) : tensors(n) {
    std::memset(&ctx, 0, sizeof ctx);
    std::memset(tensors.data(), 0, sizeof(TfLiteTensor) * n);
    ctx.tensors_size = static_cast<size_t>(n);
    ctx.tensors = tensors.data();
    ctx.ReportError = &MockRuntime::ReportError;
    ctx.ResizeTensor = &MockRuntime::ResizeTensor;
    ctx.GetTensor = &MockRuntime::GetTensor;
    ctx.recommended_num_threads = 1;
  }
  ~MockRuntime() {
    for (TfLiteTensor& t : tensors) {
      std::free(t.dims);
      std::free(t.data);
    }
  }
  MockRuntime(const MockRuntime&) = delete;
  MockRuntime& operator=(const MockRuntime&) = delete;

  static MockRuntime* self(TfLiteContext* c) { return reinterpret_cast<MockRuntime*>(c); }
  static void ReportError(TfLiteContext* c, const char* fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    self(c)->error = b;
  }
  static TfLiteStatus ResizeTensor(TfLiteContext* c, TfLiteTensor* t, TfLiteIntArray* dims) {
    self(c)->resize_calls++;
    std::free(t->dims);
    t->dims = dims;  // takes ownership, like TFLite
    std::free(t->data);
    t->data = nullptr;  // (re)allocated by Allocate(), like the arena
    set_bytes(t);
    return kTfLiteOk;
  }
  static TfLiteStatus ResizeTensorExplicit(TfLiteContext* c, TfLiteTensor* t, int n,
                                           const int* shape) {
    TfLiteIntArray* a = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (n > 0 ? n : 1)));
    a->size = n;
    if (n > 0) std::memcpy(a->data, shape, sizeof(int) * n);
    return ResizeTensor(c, t, a);
  }
  static TfLiteTensor* GetTensor(const TfLiteContext* c, int i) {
    MockRuntime* m = self(const_cast<TfLiteContext*>(c));
    if (i < 0 || static_cast<size_t>(i) >= m->tensors.size()) return nullptr;
    return &m->tensors[i];
  }

  static int64_t elements(const TfLiteTensor& t) {
    if (!t.dims) return 0;
    int64_t n = 1;
    for (int i = 0; i < t.dims->size; ++i) {
      if (t.dims->data[i] < 0) return -1;
      if (t.dims->data[i] && n > (int64_t{1} << 40) / t.dims->data[i]) return -1;
      n *= t.dims->data[i];
    }
    return n;
  }
  void SetShape(int i, const std::vector<int>& shape, TfLiteType type = kTfLiteFloat32) {
    TfLiteTensor& t = tensors[i];
    std::free(t.dims);
    t.dims = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (shape.empty() ? 1 : shape.size())));
    t.dims->size = static_cast<int>(shape.size());
    for (size_t k = 0; k < shape.size(); ++k) t.dims->data[k] = shape[k];
    t.type = type;
    std::free(t.data);
    t.data = nullptr;
    set_bytes(&t);
  }
  static size_t elem_size(TfLiteType type) {
    return type == kTfLiteFloat64 || type == kTfLiteInt64                       ? 8
           : type == kTfLiteInt16 || type == kTfLiteFloat16                     ? 2
           : type == kTfLiteUInt8 || type == kTfLiteInt8 || type == kTfLiteBool ? 1
                                                                                : 4;
  }
  // Like TFLite: `bytes` follows the shape as soon as it is set (data comes
  // later, from the arena); 0 when the shape has no valid size.
  static void set_bytes(TfLiteTensor* t) {
    const int64_t n = elements(*t);
    t->bytes = n < 0 ? 0 : static_cast<size_t>(n) * elem_size(t->type);
  }
  // Gives tensor i an exact-size buffer (nullptr for 0 bytes when null_empty).
  bool Allocate(int i, bool null_empty) {
    TfLiteTensor& t = tensors[i];
    const int64_t n = elements(t);
    if (n < 0 || n > (int64_t{1} << 26)) return false;  // "arena allocation failed"
    std::free(t.data);
    set_bytes(&t);
    t.data = (t.bytes == 0 && null_empty) ? nullptr : std::malloc(t.bytes ? t.bytes : 1);
    if (t.data) std::memset(t.data, 0xFF, t.bytes);  // NaN garbage: must be overwritten
    t.allocation_type = kTfLiteArenaRw;
    return true;
  }
  template <class T>
  void Fill(int i, const std::vector<T>& v) {
    if (tensors[i].data && !v.empty())
      std::memcpy(tensors[i].data, v.data(), std::min(tensors[i].bytes, v.size() * sizeof(T)));
  }
};

}  // namespace ccdrv
