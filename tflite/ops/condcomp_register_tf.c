/* Desktop registration of the CondComp ops into a tflite::MutableOpResolver.
 *
 * tf.lite.Interpreter(custom_op_registerers=[...]) calls a registerer with the
 * tflite::MutableOpResolver* it is about to use. The pip TensorFlow wheel ships
 * no TFLite headers and its interpreter wrapper hides its own copy of
 * MutableOpResolver, but libtensorflow_cc.so.2 (loaded by `import tensorflow`)
 * exports the same TF-version's
 *     void tflite::MutableOpResolver::AddCustom(const char*, const TfLiteRegistration*, int)
 * A non-virtual member function in the Itanium C++ ABI (x86-64, aarch64) is a
 * plain function taking `this` first, so we look it up by its mangled name
 * with dlsym and call it. No link-time dependency on TensorFlow: the library
 * also loads (and the C API registrations work) without it.
 *
 * Not used on Android: there, register CondCompGatedDenseRegistration() with
 * TfLiteInterpreterOptionsAddCustomOp (TFLite C API) or the app's own
 * MutableOpResolver::AddCustom.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stddef.h>

#include "condcomp_tflite_ops.h"

typedef void (*AddCustomFn)(void* self, const char* name, const TfLiteRegistration* reg,
                            int version);

static const char kAddCustomSymbol[] =
    "_ZN6tflite17MutableOpResolver9AddCustomEPKcPK18TfLiteRegistrationi";

static AddCustomFn find_add_custom(void) {
  void* sym = dlsym(RTLD_DEFAULT, kAddCustomSymbol);
  if (sym == NULL) {
    /* libtensorflow_cc is usually loaded RTLD_LOCAL by the TF Python module;
     * find it by soname without loading anything new. */
    static const char* const libs[] = {"libtensorflow_cc.so.2", "libtensorflow_framework.so.2",
                                       "libtensorflowlite.so", "libtensorflowlite_c.so"};
    for (size_t i = 0; sym == NULL && i < sizeof(libs) / sizeof(libs[0]); ++i) {
      void* h = dlopen(libs[i], RTLD_LAZY | RTLD_NOLOAD);
      if (h != NULL) {
        sym = dlsym(h, kAddCustomSymbol);
        dlclose(h); /* drops the reference RTLD_NOLOAD added */
      }
    }
  }
  return (AddCustomFn)sym;
}

int CondCompCanRegister(void) { return find_add_custom() != NULL; }

void CondCompRegisterOps(void* resolver) {
  AddCustomFn add = find_add_custom();
  if (add == NULL || resolver == NULL) return; /* Python checks CondCompCanRegister first */
  add(resolver, CONDCOMP_GATED_DENSE_NAME, CondCompGatedDenseRegistration(), 1);
  add(resolver, CONDCOMP_GATED_CONV2D_NAME, CondCompGatedConv2DRegistration(), 1);
}
