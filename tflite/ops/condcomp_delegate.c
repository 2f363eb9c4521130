/* The CondComp ops as a TFLite delegate: how both Python runtimes run them.
 *
 * tf.lite.Interpreter and LiteRT's (ai_edge_litert) Interpreter build a model
 * whose custom ops they cannot resolve with a placeholder registration, and
 * let delegates claim such nodes before tensors are allocated. Both load an
 * external delegate from a shared library through the C entry points
 *     tflite_plugin_create_delegate / tflite_plugin_destroy_delegate
 * (`load_delegate(path)` in either Python package). This delegate claims every
 * CondCompGatedDense / CondCompGatedConv2D node, one node per delegate kernel,
 * and runs the same init/prepare/invoke/free as the op registrations in
 * condcomp_tflite_ops.c on a copy of the node's inputs and outputs.
 *
 * Nothing here depends on a C++ symbol of the runtime: it uses only the
 * TfLiteContext function pointers GetExecutionPlan, GetNodeAndRegistration
 * and ReplaceNodeSubsetsWithDelegateKernels and the TfLiteDelegate /
 * TfLiteDelegateParams structs of the C API (common.h). The remaining ABI
 * assumptions are the struct layouts pinned in tflite_c_abi.h, including
 * sizeof(TfLiteRegistration), which ReplaceNodeSubsetsWithDelegateKernels
 * takes by value.
 *
 * Each node gets its own delegate kernel (one ReplaceNodeSubsetsWithDelegate-
 * Kernels call per node): a kernel spanning two consecutive CondComp nodes
 * would own the tensor between them, which the runtime then no longer
 * allocates.
 */
#include <stdlib.h>
#include <string.h>

#include "condcomp_tflite_ops.h"

#define CC_DELEGATE_KERNEL_NAME "CondCompDelegateKernel"

typedef struct DelegatedNode {
  const TfLiteRegistration* op; /* CondCompGatedDense or CondCompGatedConv2D */
  TfLiteNode node;              /* the original node's inputs/outputs, our user_data */
} DelegatedNode;

static const TfLiteRegistration* condcomp_op(const TfLiteRegistration* reg) {
  if (reg == NULL || reg->builtin_code != CONDCOMP_BUILTIN_CUSTOM || reg->custom_name == NULL)
    return NULL;
  if (strcmp(reg->custom_name, CONDCOMP_GATED_DENSE_NAME) == 0)
    return CondCompGatedDenseRegistration();
  if (strcmp(reg->custom_name, CONDCOMP_GATED_CONV2D_NAME) == 0)
    return CondCompGatedConv2DRegistration();
  return NULL;
}

static TfLiteIntArray* copy_int_array(const TfLiteIntArray* a) {
  const int size = a == NULL ? 0 : a->size;
  TfLiteIntArray* out = (TfLiteIntArray*)malloc(sizeof(TfLiteIntArray) + sizeof(int) * size);
  if (out == NULL) return NULL;
  out->size = size;
  if (size > 0) memcpy(out->data, a->data, sizeof(int) * size);
  return out;
}

static void free_delegated(TfLiteContext* context, DelegatedNode* d) {
  if (d == NULL) return;
  if (d->op != NULL && d->op->free != NULL && d->node.user_data != NULL)
    d->op->free(context, d->node.user_data);
  free(d->node.inputs);
  free(d->node.outputs);
  free(d);
}

/* `buffer` is the TfLiteDelegateParams of the one node this kernel replaces. */
static void* kernel_init(TfLiteContext* context, const char* buffer, size_t length) {
  (void)length;
  const TfLiteDelegateParams* params = (const TfLiteDelegateParams*)buffer;
  if (params == NULL || params->nodes_to_replace == NULL || params->nodes_to_replace->size != 1)
    return NULL;
  TfLiteNode* original = NULL;
  TfLiteRegistration* reg = NULL;
  if (context->GetNodeAndRegistration(context, params->nodes_to_replace->data[0], &original,
                                      &reg) != kTfLiteOk)
    return NULL;
  DelegatedNode* d = (DelegatedNode*)calloc(1, sizeof(DelegatedNode));
  if (d == NULL) return NULL;
  d->op = condcomp_op(reg);
  d->node.inputs = copy_int_array(original->inputs);
  d->node.outputs = copy_int_array(original->outputs);
  /* Points into the model's flatbuffer, which outlives the interpreter's nodes. */
  d->node.custom_initial_data = original->custom_initial_data;
  d->node.custom_initial_data_size = original->custom_initial_data_size;
  if (d->op == NULL || d->node.inputs == NULL || d->node.outputs == NULL) {
    free_delegated(context, d);
    return NULL;
  }
  d->node.user_data = d->op->init(context, (const char*)original->custom_initial_data,
                                  (size_t)original->custom_initial_data_size);
  return d;
}

static void kernel_free(TfLiteContext* context, void* buffer) {
  free_delegated(context, (DelegatedNode*)buffer);
}

static TfLiteStatus kernel_prepare(TfLiteContext* context, TfLiteNode* node) {
  DelegatedNode* d = (DelegatedNode*)node->user_data;
  if (d == NULL) {
    context->ReportError(context,
                         "CondComp delegate: could not set up a delegated node "
                         "(out of memory or not a CondComp op)");
    return kTfLiteError;
  }
  return d->op->prepare(context, &d->node);
}

static TfLiteStatus kernel_invoke(TfLiteContext* context, TfLiteNode* node) {
  DelegatedNode* d = (DelegatedNode*)node->user_data;
  if (d == NULL) return kTfLiteError;
  return d->op->invoke(context, &d->node);
}

static TfLiteStatus delegate_prepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  TfLiteIntArray* plan = NULL;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || plan == NULL) return kTfLiteError;
  /* The plan changes with every replacement: collect the nodes first. */
  TfLiteIntArray* claimed = copy_int_array(plan);
  if (claimed == NULL) return kTfLiteError;
  int n = 0;
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = NULL;
    TfLiteRegistration* reg = NULL;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk) {
      free(claimed);
      return kTfLiteError;
    }
    if (condcomp_op(reg) != NULL) claimed->data[n++] = plan->data[i];
  }
  TfLiteRegistration kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.init = kernel_init;
  kernel.free = kernel_free;
  kernel.prepare = kernel_prepare;
  kernel.invoke = kernel_invoke;
  kernel.custom_name = CC_DELEGATE_KERNEL_NAME;
  kernel.version = 1;
  TfLiteStatus status = kTfLiteOk;
  struct {
    TfLiteIntArray array;
    int index;
  } one;
  for (int i = 0; i < n && status == kTfLiteOk; ++i) {
    one.array.size = 1;
    one.array.data[0] = claimed->data[i];
    status = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, &one.array, delegate);
  }
  free(claimed);
  return status;
}

CONDCOMP_EXPORT TfLiteDelegate* CondCompDelegateCreate(void) {
  TfLiteDelegate* delegate = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate));
  if (delegate == NULL) return NULL;
  delegate->Prepare = delegate_prepare;
  /* Without this flag the runtime prepares the whole original graph before
   * calling Prepare (to look for dynamic tensors), and our nodes, still
   * unresolved placeholders then, fail. Our kernels compute their output
   * shapes in prepare like any op, so resizing an input re-runs prepare. */
  delegate->flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  return delegate;
}

CONDCOMP_EXPORT void CondCompDelegateDelete(TfLiteDelegate* delegate) { free(delegate); }

/* The external-delegate entry points of `load_delegate` (no options taken). */
CONDCOMP_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values,
                                                              size_t num_options,
                                                              void (*report_error)(const char*)) {
  if (num_options > 0) {
    if (report_error != NULL)
      report_error("CondComp delegate: takes no options (remove the `options` argument)");
    return NULL;
  }
  (void)keys;
  (void)values;
  TfLiteDelegate* delegate = CondCompDelegateCreate();
  if (delegate == NULL && report_error != NULL) report_error("CondComp delegate: out of memory");
  return delegate;
}

CONDCOMP_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  CondCompDelegateDelete(delegate);
}
