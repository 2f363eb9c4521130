/* TFLite registration glue for the CondComp custom ops (TFLite C API,
 * TfLiteRegistration). The math lives in the kernels (condcomp_kernels.h).
 *
 *   CondCompGatedDense   inputs: x [B, D], kernel_bm [K, D, bs], bias [K*bs],
 *                                policy_kernel [D, K], policy_bias [K]
 *                        output: y [B, K*bs]
 *                        options: activation (string), threshold (float),
 *                                 input_block_size (int, 0 = D), optional
 *                                 top_k (int in [1, K]: each example's top_k
 *                                 blocks of largest sigma instead of the
 *                                 threshold rule; absent or 0 = threshold),
 *                                 optional scale_by_gate (int 0/1: each
 *                                 computed block's outputs times its
 *                                 sigmoid(logit); absent = 0),
 *                                 optional head_units (int H >= 1: the
 *                                 dense output layer that follows, folded
 *                                 in; its kernel [K*bs, H] and bias [H]
 *                                 are the last two inputs, after every
 *                                 input below, and y is [B, H];
 *                                 cc_dense_head in condcomp_kernels.h)
 *   CondCompGatedConv2D  inputs: x [B, H, W, C], kernel_bm [K, KH, KW, C, bs],
 *                                bias [K*bs], policy_kernel [C, K], policy_bias [K]
 *                        output: y [B, OH, OW, K*bs]
 *   Either op with an int8 kernel (dynamic-range quantized) takes a sixth
 *   input, kernel_scale [K*bs] (float32): weight = kernel * kernel_scale,
 *   and with static activation scales a seventh, input_scale [D / ibs] (dense)
 *   or [C / ibs] (conv) (float32, finite, > 0): one scale per input block
 *   (condcomp_kernels.h).
 *                        options: as dense plus padding ("same"/"valid"),
 *                                 stride_h, stride_w, dilation_h, dilation_w
 *
 * Every shape, type and option is validated in Prepare, which fails with a
 * ReportError message (never aborts). The bias input may be omitted
 * (optional tensor index -1).
 *
 * Registering: CondCompGatedDenseRegistration() / CondCompGatedConv2DRegistration()
 * return the registrations for TfLiteInterpreterOptionsAddCustomOp (TFLite C
 * API, e.g. on Android) or tflite::MutableOpResolver::AddCustom;
 * condcomp_delegate.c wraps them as the delegate the desktop runtimes load.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "cc_parallel.h"
#include "condcomp_kernels.h"
#include "condcomp_tflite_ops.h"
#include "flexbuffer_map.h"
#include "tflite_c_abi.h"

#define CC_ERR_LEN 256

#define TF_LITE_ENSURE_OK_CC(expr)            \
  do {                                        \
    const TfLiteStatus status_ = (expr);      \
    if (status_ != kTfLiteOk) return status_; \
  } while (0)

enum { kOpDense = 0, kOpConv = 1 };

typedef struct {
  int op;
  char error[CC_ERR_LEN]; /* option parsing error, reported by Prepare */
  int activation;
  float threshold;
  int64_t input_block_size;
  int64_t top_k; /* 0: threshold rule */
  int64_t scale_by_gate;
  int64_t head_units; /* dense: 0, or the folded output layer's width */
  int padding_same;
  int64_t stride_h, stride_w, dilation_h, dilation_w;
  /* scratch, sized in Prepare */
  uint8_t* in_active;
  uint8_t* out_mask;
  float* gate_scale; /* scale_by_gate: [B][K] */
  float* fscratch;   /* per thread */
  int* iscratch;     /* per thread */
  size_t in_active_cap, out_mask_cap, gate_scale_cap, fscratch_cap, iscratch_cap;
  float* hidden; /* head_units: the gated layer's outputs [B][K*bs] */
  size_t hidden_cap;
  /* head_units: head_kernel with rows padded to cc_dense_head.kernel_stride,
   * copied once per constant (data, size), every invoke otherwise */
  float* head_padded;
  const void* head_padded_src;
  size_t head_padded_bytes;
  int8_t* xq; /* int8 kernel: quantized activations */
  float* xq_scale;
  size_t xq_cap, xq_scale_cap;
  int num_threads;
  uint64_t parallel_min_bytes; /* dense: see dense_phase2_threads */
  int in_block_size;           /* resolved */
  /* conv geometry resolved in Prepare */
  int out_h, out_w, pad_top, pad_left;
  /* constant kernel copied to 2 MiB-aligned memory (see pack_kernel), or
   * an int8 kernel repacked by cc_q8_pack (pack_q8_kernel) */
  void* packed;
  const void* packed_src;
  size_t packed_bytes;
  int packed_ibs;
  /* dense: whether the constant float kernel (slot 0), policy kernel
   * (slot 1) and head kernel (slot 2) are all finite, checked once per
   * (data, size); and the batch-1 list of non-zero inputs
   * (cc_gated_dense.nonzero_at) */
  const void* finite_src[3];
  size_t finite_bytes[3];
  int finite[3];
  int* nonzero_at;
  size_t nonzero_at_cap;
  /* profile slot of this node (see "profile"), valid while profile_gen matches */
  int profile_slot;
  unsigned profile_gen;
} OpData;

/* Kernels of at least this many bytes are copied into huge-page-backed memory. */
#define CC_PACK_MIN_BYTES (1u << 20)
#define CC_HUGE_PAGE (2u << 20)

/* Copies a constant (read-only, kTfLiteMmapRo) kernel into 2 MiB-aligned
 * memory advised MADV_HUGEPAGE, like XNNPACK packs its weights: the active
 * blocks of a layer are scattered 64 KiB+ tiles over megabytes of weights, and
 * with 4 KiB pages every tile costs TLB misses (about 15% of the batch-1 time
 * here). Costs one extra copy of the kernel. Disabled with CONDCOMP_PACK=0,
 * or where huge pages are unavailable (the original data is used then). */
static int huge_pages_wanted(size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes < CC_PACK_MIN_BYTES) return 0; /* before getenv: small kernels ask every invoke */
  const char* env = getenv("CONDCOMP_PACK");
  return !(env && env[0] == '0');
#else
  (void)bytes;
  return 0;
#endif
}

/* Memory for a packed kernel of `bytes`: 2 MiB-aligned and advised
 * MADV_HUGEPAGE when huge_pages_wanted, else plain malloc. NULL when out of
 * memory. */
static void* alloc_packed(size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge_pages_wanted(bytes)) {
    const size_t size = (bytes + CC_HUGE_PAGE - 1) & ~(size_t)(CC_HUGE_PAGE - 1);
    void* p = NULL;
    if (posix_memalign(&p, CC_HUGE_PAGE, size) == 0) {
      madvise(p, size, MADV_HUGEPAGE); /* a hint: fine if it fails */
      return p;
    }
  }
#endif
  return malloc(bytes ? bytes : 1);
}

static void drop_packed(OpData* d) {
  free(d->packed);
  d->packed = NULL;
  d->packed_src = NULL;
  d->packed_bytes = 0;
}

static const void* pack_kernel(OpData* d, const TfLiteTensor* t) {
  if (d->packed && d->packed_src == t->data && d->packed_bytes == t->bytes) return d->packed;
  drop_packed(d);
  if (t->allocation_type != kTfLiteMmapRo || !t->data || !huge_pages_wanted(t->bytes))
    return t->data;
  void* p = alloc_packed(t->bytes);
  if (p == NULL) return t->data;
  memcpy(p, t->data, t->bytes);
  d->packed = p;
  d->packed_src = t->data;
  d->packed_bytes = t->bytes;
  return p;
}

/* Whether the float tensor t is constant and all finite, checked once per
 * (data, size) and kept in `slot`: the kernels skip the rows of zero inputs
 * only for finite weights (0 * Inf is NaN). */
static int constant_all_finite(OpData* d, int slot, const TfLiteTensor* t) {
  if (t->allocation_type != kTfLiteMmapRo || t->data == NULL) return 0;
  if (d->finite_src[slot] != t->data || d->finite_bytes[slot] != t->bytes) {
    const uint32_t* bits = (const uint32_t*)t->data;
    uint32_t largest = 0;
    for (size_t i = 0; i < t->bytes / sizeof(float); ++i) {
      const uint32_t m = bits[i] & 0x7fffffffu;
      largest = m > largest ? m : largest;
    }
    d->finite_src[slot] = t->data;
    d->finite_bytes[slot] = t->bytes;
    d->finite[slot] = largest < 0x7f800000u;
  }
  return d->finite[slot];
}

/* head_kernel [units][H] with rows of `stride` floats (zeros past H), 64-byte
 * aligned (cc_dense_head.kernel); NULL when out of memory. */
static const float* pad_head_kernel(OpData* d, const TfLiteTensor* t, int units, int H,
                                    int stride) {
  const int constant = t->allocation_type == kTfLiteMmapRo;
  if (d->head_padded && constant && d->head_padded_src == t->data &&
      d->head_padded_bytes == t->bytes)
    return d->head_padded;
  if (d->head_padded == NULL) {
    void* p = NULL;
    if (posix_memalign(&p, 64, sizeof(float) * (size_t)units * stride) != 0) return NULL;
    d->head_padded = (float*)p;
  }
  const float* w = (const float*)t->data;
  for (int u = 0; u < units; ++u) {
    float* row = d->head_padded + (size_t)u * stride;
    memcpy(row, w + (size_t)u * H, sizeof(float) * (size_t)H);
    memset(row + H, 0, sizeof(float) * (size_t)(stride - H));
  }
  d->head_padded_src = constant ? t->data : NULL;
  d->head_padded_bytes = t->bytes;
  return d->head_padded;
}

/* The int8 kernel [K][D][bs] in cc_q8_pack's layout for input blocks of
 * `ibs`, repacked once per (data, size) (huge pages as in pack_kernel); NULL
 * when out of memory. The model file keeps the plain block-major layout, so
 * it does not depend on the CPU it runs on. */
static const int8_t* pack_q8_kernel(OpData* d, const TfLiteTensor* t, int K, int D, int bs,
                                    int ibs) {
  if (d->packed && d->packed_src == t->data && d->packed_bytes == t->bytes && d->packed_ibs == ibs)
    return (const int8_t*)d->packed;
  drop_packed(d);
  const size_t bytes = cc_q8_packed_size(K, D, bs, ibs);
  if (bytes == 0) return NULL;
  int8_t* p = (int8_t*)alloc_packed(bytes);
  if (p == NULL) return NULL;
  cc_q8_pack((const int8_t*)t->data, K, D, bs, ibs, p);
  d->packed = p;
  d->packed_src = t->data;
  d->packed_bytes = t->bytes;
  d->packed_ibs = ibs;
  return p;
}

/* ------------------------------------------------------------- stats */

static atomic_ullong g_stat_macs;
static atomic_ullong g_stat_invokes;
static atomic_ullong g_stat_active_blocks;
static atomic_ullong g_stat_total_blocks;

void CondCompGetStats(uint64_t* macs, uint64_t* invokes, uint64_t* active_blocks,
                      uint64_t* total_blocks) {
  if (macs) *macs = atomic_load(&g_stat_macs);
  if (invokes) *invokes = atomic_load(&g_stat_invokes);
  if (active_blocks) *active_blocks = atomic_load(&g_stat_active_blocks);
  if (total_blocks) *total_blocks = atomic_load(&g_stat_total_blocks);
}

void CondCompResetStats(void) {
  atomic_store(&g_stat_macs, 0);
  atomic_store(&g_stat_invokes, 0);
  atomic_store(&g_stat_active_blocks, 0);
  atomic_store(&g_stat_total_blocks, 0);
}

const char* CondCompKernelIsa(void) {
  /* The float kernel path and the int8 one, e.g. "x86-64 avx2+fma clone; int8: avx2 vpmaddubsw". */
  static char text[160];
  static atomic_int ready;
  if (!atomic_load(&ready)) {
    snprintf(text, sizeof text, "%s; int8: %s", cc_kernel_isa(), cc_kernel_isa_q8());
    atomic_store(&ready, 1);
  }
  return text;
}

/* ------------------------------------------------------------- profile */

/* Off by default (one relaxed load per invoke). When on, every CondComp node
 * gets a slot, in the order the nodes first run, that adds up the time of
 * its two phases (phase 1: input checks, policy product, int8 activation
 * quantization, masks; phase 2: the weight-tile loops and the activation)
 * and which weight tiles it read: a tile is (output block j, input block i),
 * read by an example with j on and i non-zero. A measurement mode for
 * benchmarks/profile_invoke.py: one interpreter invoking at a time. */
/* keras_condcomp.litert mirrors the layout with ctypes */
_Static_assert(sizeof(CondCompProfileEntry) == 10 * 4 + 8 * 8 + 64 * 8 + 2 * 8,
               "CondCompProfileEntry layout changed: update keras_condcomp/litert.py");
static atomic_int g_profiling;
static atomic_uint g_profile_gen = 1;
static int g_profile_slots_used;
static CondCompProfileEntry g_profile[CONDCOMP_PROFILE_SLOTS];

void CondCompProfileEnable(int on) {
  atomic_store(&g_profiling, 0);
  memset(g_profile, 0, sizeof(g_profile));
  g_profile_slots_used = 0;
  atomic_fetch_add(&g_profile_gen, 1); /* every node takes a new slot */
  atomic_store(&g_profiling, on != 0);
}

int CondCompProfileCount(void) { return g_profile_slots_used; }

int CondCompProfileGet(int slot, CondCompProfileEntry* out) {
  if (out == NULL || slot < 0 || slot >= g_profile_slots_used) return 0;
  *out = g_profile[slot];
  return 1;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int profiling(void) { return atomic_load_explicit(&g_profiling, memory_order_relaxed); }

/* The slot of node `d` (NULL when all CONDCOMP_PROFILE_SLOTS are taken). */
static CondCompProfileEntry* profile_slot(OpData* d) {
  const unsigned gen = atomic_load(&g_profile_gen);
  if (d->profile_gen != gen) {
    if (g_profile_slots_used >= CONDCOMP_PROFILE_SLOTS) return NULL;
    d->profile_gen = gen;
    d->profile_slot = g_profile_slots_used++;
  }
  return &g_profile[d->profile_slot];
}

/* One invoke of a layer as the profile and the counters record it. */
typedef struct {
  int batch, in_dim, num_blocks, block_size, in_block_size, taps, quantized;
  const uint8_t* in_active; /* [batch][in_dim / in_block_size] */
  const uint8_t* out_mask;  /* [batch][num_blocks] */
} InvokeShape;

/* Adds one invoke of a layer: its geometry, phase times, multiply-adds and
 * the tiles its examples read. */
static void profile_record(OpData* d, const InvokeShape* s, uint64_t t0, uint64_t t1, uint64_t t2,
                           uint64_t macs) {
  CondCompProfileEntry* e = profile_slot(d);
  if (e == NULL) return;
  const int B = s->batch, in_dim = s->in_dim, K = s->num_blocks, bs = s->block_size;
  const int ibs = s->in_block_size, taps = s->taps, quantized = s->quantized;
  const uint8_t* in_active = s->in_active;
  const uint8_t* out_mask = s->out_mask;
  const int n_in = in_dim / ibs;
  e->op = d->op;
  e->quantized = quantized;
  e->in_dim = in_dim;
  e->num_blocks = K;
  e->block_size = bs;
  e->in_block_size = ibs;
  e->top_k = (int)d->top_k;
  e->taps = taps;
  /* int8 tiles are packed in row quads (cc_q8_pack) */
  e->tile_bytes = quantized ? (uint64_t)(ibs + 3) / 4 * 4 * bs * taps
                            : (uint64_t)ibs * bs * taps * sizeof(float);
  e->invokes += 1;
  e->examples += (uint64_t)B;
  e->gate_ns += t1 - t0;
  e->block_ns += t2 - t1;
  e->macs += macs;
  e->tiles_exact = K <= 64 && n_in <= 64;
  uint64_t read[64] = {0};
  for (int b = 0; b < B; ++b) {
    const uint8_t* act = in_active + (size_t)b * n_in;
    uint64_t inputs = 0;
    for (int i = 0; i < n_in && i < 64; ++i) inputs |= (uint64_t)(act[i] != 0) << i;
    for (int i = 0; i < n_in; ++i)
      if (act[i]) e->policy_bytes += (uint64_t)ibs * K * sizeof(float);
    for (int j = 0; j < K && j < 64; ++j)
      if (out_mask[(size_t)b * K + j] == 1) read[j] |= inputs;
  }
  for (int j = 0; j < K && j < 64; ++j) {
    e->tile_reads += (uint64_t)__builtin_popcountll(read[j]);
    e->tiles_seen[j] |= read[j];
  }
}

/* Adds the folded output layer's time and multiply-adds to node d's slot
 * (after profile_record of the same invoke). */
static void profile_record_head(OpData* d, int head_units, uint64_t ns, uint64_t macs) {
  CondCompProfileEntry* e = profile_slot(d);
  if (e == NULL) return;
  e->head_units = head_units;
  e->head_ns += ns;
  e->head_macs += macs;
}

/* ------------------------------------------------------------- options */

static void set_error(OpData* d, const char* fmt, ...) {
  if (d->error[0]) return; /* keep the first error */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->error, sizeof(d->error), fmt, ap);
  va_end(ap);
}

static const char* fxb_reason(cc_fxb_status s) {
  switch (s) {
    case CC_FXB_MISSING:
      return "is missing";
    case CC_FXB_BAD_TYPE:
      return "has the wrong type";
    default:
      return "is malformed";
  }
}

/* Printable-ASCII copy of untrusted option text for error messages (the
 * runtime passes them on to Python, which needs valid UTF-8). */
static const char* printable(char* out, size_t cap, const char* s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 1 < cap; ++i) {
    const unsigned char c = (unsigned char)s[i];
    out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  out[n] = 0;
  return out;
}

static int is_known_key(int op, const char* key) {
  static const char* const common[] = {"activation", "threshold", "input_block_size", "top_k",
                                       "scale_by_gate"};
  static const char* const conv[] = {"padding", "stride_h", "stride_w", "dilation_h", "dilation_w"};
  for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); ++i)
    if (strcmp(key, common[i]) == 0) return 1;
  if (op == kOpDense && strcmp(key, "head_units") == 0) return 1;
  if (op == kOpConv)
    for (size_t i = 0; i < sizeof(conv) / sizeof(conv[0]); ++i)
      if (strcmp(key, conv[i]) == 0) return 1;
  return 0;
}

static void get_int_attr(OpData* d, const cc_fxb_map* m, const char* key, int64_t* out, int64_t lo,
                         int64_t hi) {
  cc_fxb_status s = cc_fxb_get_int(m, key, out);
  if (s != CC_FXB_OK) {
    set_error(d, "option `%s` %s (expected an integer)", key, fxb_reason(s));
  } else if (*out < lo || *out > hi) {
    set_error(d, "option `%s`=%lld is out of range [%lld, %lld]", key, (long long)*out,
              (long long)lo, (long long)hi);
  }
}

/* An option that may be absent (then *out keeps its default). */
static void get_optional_int_attr(OpData* d, const cc_fxb_map* m, const char* key, int64_t* out,
                                  int64_t lo, int64_t hi) {
  int64_t probe;
  if (cc_fxb_get_int(m, key, &probe) != CC_FXB_MISSING) get_int_attr(d, m, key, out, lo, hi);
}

static void parse_options(OpData* d, const char* buffer, size_t length) {
  cc_fxb_map m;
  cc_fxb_status s = cc_fxb_open_map(buffer, length, &m);
  if (s != CC_FXB_OK) {
    set_error(d, "custom options are not a valid FlexBuffers map (%zu bytes)", length);
    return;
  }
  for (uint64_t i = 0; i < m.count; ++i) {
    const char* key;
    if (cc_fxb_key_at(&m, i, &key) != CC_FXB_OK) {
      set_error(d, "custom options: key %llu is malformed", (unsigned long long)i);
      return;
    }
    if (!is_known_key(d->op, key)) {
      char buf[65];
      set_error(d, "unknown option `%s`", printable(buf, sizeof(buf), key, strlen(key)));
      return;
    }
  }
  const char* str;
  size_t len;
  s = cc_fxb_get_string(&m, "activation", &str, &len);
  if (s != CC_FXB_OK) {
    set_error(d, "option `activation` %s (expected a string)", fxb_reason(s));
  } else {
    d->activation = cc_activation_from_name(str, len);
    if (d->activation < 0) {
      char buf[65];
      set_error(d, "option `activation`='%s' is not supported; expected one of: %s",
                printable(buf, sizeof(buf), str, len), cc_activation_names());
    }
  }
  double thr;
  s = cc_fxb_get_double(&m, "threshold", &thr);
  if (s != CC_FXB_OK) {
    set_error(d, "option `threshold` %s (expected a float)", fxb_reason(s));
  } else if (!(thr >= 0.0 && thr <= 1.0)) {
    set_error(d, "option `threshold`=%g must be in [0, 1]", thr);
  } else {
    d->threshold = (float)thr;
  }
  get_int_attr(d, &m, "input_block_size", &d->input_block_size, 0, INT_MAX);
  get_optional_int_attr(d, &m, "top_k", &d->top_k, 0, INT_MAX);
  get_optional_int_attr(d, &m, "scale_by_gate", &d->scale_by_gate, 0, 1);
  if (d->op == kOpDense) get_optional_int_attr(d, &m, "head_units", &d->head_units, 1, INT_MAX);
  if (d->op == kOpConv) {
    s = cc_fxb_get_string(&m, "padding", &str, &len);
    if (s != CC_FXB_OK) {
      set_error(d, "option `padding` %s (expected a string)", fxb_reason(s));
    } else if (len == 4 && memcmp(str, "same", 4) == 0) {
      d->padding_same = 1;
    } else if (len == 5 && memcmp(str, "valid", 5) == 0) {
      d->padding_same = 0;
    } else {
      char buf[65];
      set_error(d, "option `padding`='%s' must be 'same' or 'valid'",
                printable(buf, sizeof(buf), str, len));
    }
    get_int_attr(d, &m, "stride_h", &d->stride_h, 1, 1 << 16);
    get_int_attr(d, &m, "stride_w", &d->stride_w, 1, 1 << 16);
    get_int_attr(d, &m, "dilation_h", &d->dilation_h, 1, 1 << 16);
    get_int_attr(d, &m, "dilation_w", &d->dilation_w, 1, 1 << 16);
  }
}

static void* init_common(int op, const char* buffer, size_t length) {
  OpData* d = (OpData*)calloc(1, sizeof(OpData));
  if (d == NULL) return NULL; /* Prepare reports it */
  d->op = op;
  d->activation = -1;
  parse_options(d, buffer, length);
  return d;
}

static void* init_dense(TfLiteContext* context, const char* buffer, size_t length) {
  (void)context;
  return init_common(kOpDense, buffer, length);
}

static void* init_conv(TfLiteContext* context, const char* buffer, size_t length) {
  (void)context;
  return init_common(kOpConv, buffer, length);
}

static void free_op(TfLiteContext* context, void* buffer) {
  (void)context;
  OpData* d = (OpData*)buffer;
  if (d == NULL) return;
  free(d->in_active);
  free(d->out_mask);
  free(d->gate_scale);
  free(d->fscratch);
  free(d->iscratch);
  free(d->hidden);
  free(d->head_padded);
  free(d->xq);
  free(d->xq_scale);
  free(d->nonzero_at);
  free(d->packed);
  free(d);
}

/* ------------------------------------------------------------- tensors */

#define OP_NAME(d) ((d)->op == kOpDense ? "CondCompGatedDense" : "CondCompGatedConv2D")

#define FAIL(context, d, ...)                                      \
  do {                                                             \
    char msg_[CC_ERR_LEN];                                         \
    snprintf(msg_, sizeof(msg_), __VA_ARGS__);                     \
    (context)->ReportError((context), "%s: %s", OP_NAME(d), msg_); \
    return kTfLiteError;                                           \
  } while (0)

static TfLiteTensor* tensor_at(TfLiteContext* context, int index) {
  if (index < 0 || (size_t)index >= context->tensors_size) return NULL;
  if (context->GetTensor) return context->GetTensor(context, index);
  return &context->tensors[index];
}

/* Our struct layout must be TFLite's: tensors must be sizeof(TfLiteTensor)
 * apart and GetTensor must agree with the tensors array. */
static int abi_ok(TfLiteContext* context, int index) {
  if (context->tensors == NULL || context->GetTensor == NULL) return 1;
  return context->GetTensor(context, index) == &context->tensors[index];
}

static const char* kInputNames[] = {"x",           "kernel",       "bias",       "policy_kernel",
                                    "policy_bias", "kernel_scale", "input_scale"};

/* Inputs 0-4, plus input 5 (kernel_scale) when the kernel is int8 and input
 * 6 (input_scale) when its activation scales are static; then, with option
 * head_units, head_kernel and head_bias. */
typedef struct {
  TfLiteTensor* t[7];
  int n;                     /* 5, 6 or 7: the inputs before the head's */
  int quantized;             /* kernel int8, kernel_scale present */
  TfLiteTensor* head_kernel; /* NULL without head_units */
  TfLiteTensor* head_bias;   /* NULL without head_units or when omitted */
  TfLiteTensor* out;
} Tensors;

/* Input i's name when the op has n inputs before the head's. */
static const char* input_name(int i, int n) {
  if (i < n) return kInputNames[i];
  return i == n ? "head_kernel" : "head_bias";
}

static int64_t dim(const TfLiteTensor* t, int i) { return t->dims->data[i]; }

static TfLiteStatus get_tensors(TfLiteContext* context, TfLiteNode* node, OpData* d, Tensors* ts) {
  if (node->inputs == NULL || node->outputs == NULL) FAIL(context, d, "node has no inputs/outputs");
  const int head = d->head_units > 0 ? 2 : 0;
  if (node->inputs->size < 5 + head || node->inputs->size > 7 + head)
    FAIL(context, d,
         "expected 5 inputs (x, kernel, bias, policy_kernel, policy_bias), 6 "
         "(and kernel_scale, for an int8 kernel) or 7 (and input_scale, for static int8 "
         "activation scales)%s, got %d",
         head ? ", then head_kernel and head_bias (option head_units)" : "", node->inputs->size);
  if (node->outputs->size != 1) FAIL(context, d, "expected 1 output, got %d", node->outputs->size);
  ts->n = node->inputs->size - head;
  ts->quantized = ts->n >= 6;
  TfLiteTensor* all[9];
  for (int i = 0; i < ts->n + head; ++i) {
    const int idx = node->inputs->data[i];
    const char* name = input_name(i, ts->n);
    all[i] = NULL;
    if ((i == 2 || (head && i == ts->n + 1)) && idx == kTfLiteOptionalTensor) continue;
    TfLiteTensor* t = tensor_at(context, idx);
    all[i] = t;
    if (t == NULL) FAIL(context, d, "input %d (%s) is missing", i, name);
    if (!abi_ok(context, idx))
      FAIL(context, d,
           "TfLiteTensor layout mismatch between this library and the runtime "
           "(tflite_c_abi.h does not match this TFLite version)");
    const int int8_kernel = ts->quantized && i == 1;
    const TfLiteType want = int8_kernel ? kTfLiteInt8 : kTfLiteFloat32;
    if (t->type != want)
      FAIL(context, d, "input %d (%s) must be %s, got TfLiteType %d", i, name,
           int8_kernel ? "int8 (6 or 7 inputs: a quantized kernel)" : "float32", (int)t->type);
    if (t->dims == NULL) FAIL(context, d, "input %d (%s) has no shape", i, name);
    int64_t n = 1;
    for (int k = 0; k < t->dims->size; ++k) {
      if (t->dims->data[k] < 0) FAIL(context, d, "input %d (%s) has a negative dimension", i, name);
      n *= t->dims->data[k];
      if (n > ((int64_t)1 << 40)) FAIL(context, d, "input %d (%s) is too large", i, name);
    }
    const int64_t elem = int8_kernel ? 1 : (int64_t)sizeof(float);
    if (t->bytes != (size_t)(n * elem))
      FAIL(context, d, "input %d (%s) holds %zu bytes, its shape needs %lld", i, name, t->bytes,
           (long long)(n * elem));
  }
  for (int i = 0; i < ts->n; ++i) ts->t[i] = all[i];
  ts->head_kernel = head ? all[ts->n] : NULL;
  ts->head_bias = head ? all[ts->n + 1] : NULL;
  ts->out = tensor_at(context, node->outputs->data[0]);
  if (ts->out == NULL) FAIL(context, d, "output tensor is missing");
  if (ts->out->type != kTfLiteFloat32)
    FAIL(context, d, "output must be float32, got TfLiteType %d", (int)ts->out->type);
  return kTfLiteOk;
}

static TfLiteStatus expect_rank(TfLiteContext* context, OpData* d, const TfLiteTensor* t, int input,
                                int rank) {
  if (t->dims->size != rank)
    FAIL(context, d, "input %d (%s) must have rank %d, got rank %d", input, kInputNames[input],
         rank, t->dims->size);
  return kTfLiteOk;
}

static TfLiteStatus resize_output(TfLiteContext* context, OpData* d, TfLiteTensor* out, int rank,
                                  const int* shape) {
  if (out->dims && out->dims->size == rank) {
    int same = 1;
    for (int i = 0; i < rank; ++i) same &= out->dims->data[i] == shape[i];
    if (same) return kTfLiteOk;
  }
  TfLiteStatus s;
  if (context->ResizeTensorExplicit) {
    s = context->ResizeTensorExplicit(context, out, rank, shape);
  } else {
    /* ResizeTensor takes ownership and frees the array with free(). */
    TfLiteIntArray* a = (TfLiteIntArray*)malloc(sizeof(TfLiteIntArray) + sizeof(int) * rank);
    if (a == NULL) FAIL(context, d, "out of memory");
    a->size = rank;
    memcpy(a->data, shape, sizeof(int) * rank);
    s = context->ResizeTensor(context, out, a);
  }
  if (s != kTfLiteOk) FAIL(context, d, "could not resize the output");
  return kTfLiteOk;
}

static int grow(void** p, size_t* cap, size_t bytes) {
  if (bytes <= *cap && *p) return 1;
  void* n = realloc(*p, bytes ? bytes : 1);
  if (n == NULL) return 0;
  *p = n;
  *cap = bytes;
  return 1;
}

static int thread_count(TfLiteContext* context) {
  int n = context->recommended_num_threads;
  if (n < 1) n = 1;
  if (n > CC_MAX_THREADS) n = CC_MAX_THREADS;
  return n;
}

/* Static activation scales divide the activations: each must be finite and
 * > 0 (a zero or NaN scale would make the int8 conversion undefined). */
static TfLiteStatus check_input_scale(TfLiteContext* context, OpData* d, const TfLiteTensor* t) {
  const float* s = (const float*)t->data;
  for (int i = 0; i < t->dims->data[0]; ++i)
    if (!(s[i] > 0.0f && s[i] <= FLT_MAX))
      FAIL(context, d, "input_scale[%d] = %g: static activation scales must be finite and > 0", i,
           (double)s[i]);
  return kTfLiteOk;
}

/* Shared checks of bias / policy inputs for K blocks of bs over `in` features. */
static TfLiteStatus check_gating_inputs(TfLiteContext* context, OpData* d, const Tensors* ts,
                                        int64_t K, int64_t bs, int64_t in) {
  if (ts->t[2]) {
    TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts->t[2], 2, 1));
    if (dim(ts->t[2], 0) != K * bs)
      FAIL(context, d, "bias has %lld entries, expected num_blocks*block_size = %lld",
           (long long)dim(ts->t[2], 0), (long long)(K * bs));
  }
  if (ts->quantized) {
    TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts->t[5], 5, 1));
    if (dim(ts->t[5], 0) != K * bs)
      FAIL(context, d, "kernel_scale has %lld entries, expected num_blocks*block_size = %lld",
           (long long)dim(ts->t[5], 0), (long long)(K * bs));
  }
  TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts->t[3], 3, 2));
  if (dim(ts->t[3], 0) != in || dim(ts->t[3], 1) != K)
    FAIL(context, d, "policy_kernel has shape [%lld, %lld], expected [%lld, %lld]",
         (long long)dim(ts->t[3], 0), (long long)dim(ts->t[3], 1), (long long)in, (long long)K);
  TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts->t[4], 4, 1));
  if (dim(ts->t[4], 0) != K)
    FAIL(context, d, "policy_bias has %lld entries, expected num_blocks = %lld",
         (long long)dim(ts->t[4], 0), (long long)K);
  int64_t ibs = d->input_block_size == 0 ? in : d->input_block_size;
  if (ibs < 1 || ibs > in || in % ibs != 0)
    FAIL(context, d, "option `input_block_size`=%lld must divide the input size %lld",
         (long long)d->input_block_size, (long long)in);
  d->in_block_size = (int)ibs;
  if (ts->n == 7) {
    TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts->t[6], 6, 1));
    if (dim(ts->t[6], 0) != in / ibs)
      FAIL(context, d, "input_scale has %lld entries, expected one per input block = %lld",
           (long long)dim(ts->t[6], 0), (long long)(in / ibs));
    /* Constant (the converter's case): its values are known now. */
    if (ts->t[6]->data) TF_LITE_ENSURE_OK_CC(check_input_scale(context, d, ts->t[6]));
  }
  if (d->top_k > K)
    FAIL(context, d, "option `top_k`=%lld exceeds num_blocks = %lld", (long long)d->top_k,
         (long long)K);
  return kTfLiteOk;
}

static TfLiteStatus alloc_scratch(TfLiteContext* context, OpData* d, int64_t batch,
                                  int64_t in_blocks, int64_t K, int64_t floats_per_thread,
                                  int64_t ints_per_thread) {
  d->num_threads = thread_count(context);
  const size_t T = (size_t)d->num_threads;
  if (!grow((void**)&d->in_active, &d->in_active_cap, (size_t)(batch * in_blocks)) ||
      !grow((void**)&d->out_mask, &d->out_mask_cap, (size_t)(batch * K)) ||
      (d->scale_by_gate &&
       !grow((void**)&d->gate_scale, &d->gate_scale_cap, sizeof(float) * (size_t)(batch * K))) ||
      !grow((void**)&d->fscratch, &d->fscratch_cap,
            sizeof(float) * T * (size_t)floats_per_thread) ||
      !grow((void**)&d->iscratch, &d->iscratch_cap, sizeof(int) * T * (size_t)ints_per_thread))
    FAIL(context, d, "out of memory for scratch buffers");
  return kTfLiteOk;
}

/* int8 activations of `positions` per example (1 for dense, H*W for conv),
 * each of `in_blocks` blocks padded to a multiple of 4, and one scale per
 * (example, input block). */
static TfLiteStatus alloc_xq(TfLiteContext* context, OpData* d, int64_t batch, int64_t positions,
                             int64_t in_blocks) {
  const int64_t padded = (d->in_block_size + 3) / 4 * 4;
  const int64_t bytes = batch * positions * in_blocks * padded;
  if (bytes > ((int64_t)1 << 40)) FAIL(context, d, "int8 activation scratch is too large");
  if (!grow((void**)&d->xq, &d->xq_cap, (size_t)bytes) ||
      !grow((void**)&d->xq_scale, &d->xq_scale_cap, sizeof(float) * (size_t)(batch * in_blocks)))
    FAIL(context, d, "out of memory for scratch buffers");
  return kTfLiteOk;
}

/* Sets the kernel, bias and policy inputs of a cc_gated_dense or
 * cc_gated_conv2d `p` (the same field names; its block sizes already set):
 * a float kernel copied to huge pages (pack_kernel), or an int8 one repacked
 * (pack_q8_kernel) with its scales and activation scratch. `rows` = the
 * kernel's rows per output block (D, or KH * KW * C). */
#define bind_inputs(context, d, ts, rows, p)                                                   \
  bind_inputs_into(context, d, ts, rows, (p)->num_blocks, (p)->block_size, (p)->in_block_size, \
                   &(p)->kernel_bm, &(p)->kernel_q, &(p)->kernel_scale, &(p)->input_scale,     \
                   &(p)->xq, &(p)->xq_scale, &(p)->bias, &(p)->policy_kernel, &(p)->policy_bias)

static TfLiteStatus bind_inputs_into(TfLiteContext* context, OpData* d, const Tensors* ts, int rows,
                                     int K, int bs, int ibs, const float** kernel_bm,
                                     const int8_t** kernel_q, const float** kernel_scale,
                                     const float** input_scale, int8_t** xq, float** xq_scale,
                                     const float** bias, const float** policy_kernel,
                                     const float** policy_bias) {
  *kernel_bm = NULL;
  *kernel_q = NULL;
  *kernel_scale = NULL;
  *input_scale = NULL;
  *xq = NULL;
  *xq_scale = NULL;
  if (ts->quantized) {
    *kernel_q = pack_q8_kernel(d, ts->t[1], K, rows, bs, ibs);
    if (*kernel_q == NULL) FAIL(context, d, "out of memory for the packed int8 kernel");
    *kernel_scale = (const float*)ts->t[5]->data;
    if (ts->n == 7) {
      TF_LITE_ENSURE_OK_CC(check_input_scale(context, d, ts->t[6]));
      *input_scale = (const float*)ts->t[6]->data;
    }
    *xq = d->xq;
    *xq_scale = d->xq_scale;
  } else {
    *kernel_bm = (const float*)pack_kernel(d, ts->t[1]);
  }
  *bias = ts->t[2] ? (const float*)ts->t[2]->data : NULL;
  *policy_kernel = (const float*)ts->t[3]->data;
  *policy_bias = (const float*)ts->t[4]->data;
  return kTfLiteOk;
}

/* ------------------------------------------------------------- dense */

static TfLiteStatus prepare_common_head(TfLiteContext* context, TfLiteNode* node, OpData* d) {
  if (d == NULL) {
    context->ReportError(context, "CondComp op: out of memory in Init");
    return kTfLiteError;
  }
  if (d->error[0]) FAIL(context, d, "%s", d->error);
  (void)node;
  return kTfLiteOk;
}

/* Below this much work (weight bytes times the examples that use them) a
 * dense op runs on the calling thread alone: handing half of it to a pool
 * worker (posting, joining, the outputs moving between cores) costs more
 * than it saves. Measured on a 2-core AMD EPYC, batch 1, 2 threads, the
 * 784-2048-2048-2048 stack of benchmarks/benchmark.py, medians of 4-5 processes:
 * int8 tau 0.1 (hidden layers about 42 KB, the first 160 KB) 0.025 ms split
 * vs 0.022 ms serial, float32 tau 0.1 (hidden 168 KB) 0.048 vs 0.045 ms;
 * int8 tau 0.25 (hidden 262 KB, first 400 KB) split 0.039 vs serial 0.045 ms.
 * $CONDCOMP_PARALLEL_MIN_BYTES overrides it, read in Prepare (0: always split, as the tests do to
 * run the parallel path on small models). */
#define CC_PARALLEL_MIN_BYTES_DEFAULT (192u * 1024u)

static TfLiteStatus read_parallel_min_bytes(TfLiteContext* context, OpData* d) {
  d->parallel_min_bytes = CC_PARALLEL_MIN_BYTES_DEFAULT;
  const char* env = getenv("CONDCOMP_PARALLEL_MIN_BYTES");
  if (env == NULL || env[0] == '\0') return kTfLiteOk;
  char* end = NULL;
  errno = 0;
  const unsigned long long v = strtoull(env, &end, 10);
  if (env[0] < '0' || env[0] > '9' || *end != '\0' || errno == ERANGE)
    FAIL(context, d,
         "$CONDCOMP_PARALLEL_MIN_BYTES must be a byte count (a non-negative "
         "integer), got \"%.40s\"",
         env);
  d->parallel_min_bytes = v;
  return kTfLiteOk;
}

/* Threads worth using for phase 2 of this invoke (after the gate): 1 when
 * sum over examples of (active output blocks x non-zero input blocks x tile
 * bytes) is below d->parallel_min_bytes. */
static int dense_phase2_threads(const cc_gated_dense* p, const OpData* d) {
  if (d->num_threads <= 1) return 1;
  const int K = p->num_blocks, n_in = p->in_dim / p->in_block_size;
  const uint64_t tile = (uint64_t)p->in_block_size * p->block_size * (p->kernel_q ? 1 : 4);
  uint64_t work = 0;
  for (int e = 0; e < p->batch && work < d->parallel_min_bytes; ++e) {
    uint64_t on = 0, in = 0;
    for (int j = 0; j < K; ++j) on += p->out_mask[(size_t)e * K + j] == 1;
    if (on == 0) continue;
    for (int i = 0; i < n_in; ++i) in += p->in_active[(size_t)e * n_in + i] != 0;
    work += on * in * tile;
  }
  return work < d->parallel_min_bytes ? 1 : d->num_threads;
}

static int64_t head_stride(int64_t H) {
  return (H + CC_HEAD_ALIGN - 1) / CC_HEAD_ALIGN * CC_HEAD_ALIGN;
}

/* The folded output layer's inputs: head_kernel [units, head_units] and
 * head_bias [head_units] (or omitted); scratch for the gated outputs. */
static TfLiteStatus check_head_inputs(TfLiteContext* context, OpData* d, const Tensors* ts,
                                      int64_t units, int64_t B) {
  const int64_t H = d->head_units;
  const TfLiteTensor* w = ts->head_kernel;
  if (w->dims->size != 2 || dim(w, 0) != units || dim(w, 1) != H) {
    char got[48] = "rank 0";
    if (w->dims->size == 1) snprintf(got, sizeof got, "shape [%lld]", (long long)dim(w, 0));
    if (w->dims->size >= 2)
      snprintf(got, sizeof got, "%s [%lld, %lld%s]", w->dims->size == 2 ? "shape" : "rank > 2",
               (long long)dim(w, 0), (long long)dim(w, 1), w->dims->size == 2 ? "" : ", ...");
    FAIL(context, d,
         "input %d (head_kernel) has %s, expected [num_blocks*block_size, head_units] = "
         "[%lld, %lld]",
         ts->n, got, (long long)units, (long long)H);
  }
  const TfLiteTensor* b = ts->head_bias;
  if (b && (b->dims->size != 1 || dim(b, 0) != H))
    FAIL(context, d, "input %d (head_bias) must have shape [head_units] = [%lld]", ts->n + 1,
         (long long)H);
  if (B * H > INT_MAX) FAIL(context, d, "output would have more than INT_MAX elements");
  if (units * head_stride(H) > ((int64_t)1 << 36)) FAIL(context, d, "head_kernel is too large");
  if (!grow((void**)&d->hidden, &d->hidden_cap, sizeof(float) * (size_t)(B * units)))
    FAIL(context, d, "out of memory for scratch buffers");
  /* the padded copy's size follows the shape (Prepare runs again on a resize) */
  free(d->head_padded);
  d->head_padded = NULL;
  d->head_padded_src = NULL;
  return kTfLiteOk;
}

static TfLiteStatus prepare_dense(TfLiteContext* context, TfLiteNode* node) {
  OpData* d = (OpData*)node->user_data;
  TF_LITE_ENSURE_OK_CC(prepare_common_head(context, node, d));
  Tensors ts;
  TF_LITE_ENSURE_OK_CC(get_tensors(context, node, d, &ts));
  TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts.t[0], 0, 2));
  TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts.t[1], 1, 3));
  const int64_t B = dim(ts.t[0], 0), D = dim(ts.t[0], 1);
  const int64_t K = dim(ts.t[1], 0), Dk = dim(ts.t[1], 1), bs = dim(ts.t[1], 2);
  if (D < 1)
    FAIL(context, d, "x must have at least one feature, got shape [%lld, %lld]", (long long)B,
         (long long)D);
  if (K < 1 || bs < 1)
    FAIL(context, d, "kernel shape [%lld, %lld, %lld] needs num_blocks >= 1 and block_size >= 1",
         (long long)K, (long long)Dk, (long long)bs);
  if (Dk != D)
    FAIL(context, d,
         "kernel has shape [%lld, %lld, %lld] (num_blocks, input_dim, block_size) but "
         "x has input_dim %lld",
         (long long)K, (long long)Dk, (long long)bs, (long long)D);
  TF_LITE_ENSURE_OK_CC(check_gating_inputs(context, d, &ts, K, bs, D));
  TF_LITE_ENSURE_OK_CC(read_parallel_min_bytes(context, d));
  if (B * K * bs > INT_MAX) FAIL(context, d, "output would have more than INT_MAX elements");
  const int64_t H = d->head_units;
  if (H > 0) TF_LITE_ENSURE_OK_CC(check_head_inputs(context, d, &ts, K * bs, B));
  const int shape[2] = {(int)B, (int)(H > 0 ? H : K * bs)};
  TF_LITE_ENSURE_OK_CC(resize_output(context, d, ts.out, 2, shape));
  if (ts.quantized) TF_LITE_ENSURE_OK_CC(alloc_xq(context, d, B, 1, D / d->in_block_size));
  if (B == 1 && !grow((void**)&d->nonzero_at, &d->nonzero_at_cap, sizeof(int) * (size_t)(D + 1)))
    FAIL(context, d, "out of memory for scratch buffers");
  return alloc_scratch(context, d, B, D / d->in_block_size, K, CC_GATE_GROUP * K, 2 * B);
}

/* Work is shared dynamically (atomic counters): a pool worker that wakes up
 * late just finds nothing left (see cc_parallel.h). */
typedef struct {
  cc_gated_dense* p;
  OpData* d;
  atomic_int next_example;
  int chunk;
  atomic_int next_block;
  atomic_ullong macs;
} DenseJob;

static void dense_gate_task(void* raw, int t, int n) {
  (void)n;
  DenseJob* job = (DenseJob*)raw;
  const int B = job->p->batch;
  for (;;) {
    const int lo = atomic_fetch_add(&job->next_example, job->chunk);
    if (lo >= B) break;
    const int hi = lo + job->chunk < B ? lo + job->chunk : B;
    cc_gated_dense_gate(job->p, lo, hi,
                        job->d->fscratch + (size_t)t * CC_GATE_GROUP * job->p->num_blocks);
  }
}

/* The output block a phase-2 task takes next: where it is the only task
 * (n == 1: cc_parallel_run ran it alone) each in turn, with no atomic per
 * block; otherwise the next one no task has taken. */
static inline int next_output_block(atomic_int* next, int* own, int n) {
  return n == 1 ? (*own)++ : atomic_fetch_add_explicit(next, 1, memory_order_relaxed);
}

static void dense_block_task(void* raw, int t, int n) {
  DenseJob* job = (DenseJob*)raw;
  int* ex = job->d->iscratch + (size_t)t * 2 * job->p->batch;
  uint64_t macs = 0;
  for (int own = 0;;) {
    const int j = next_output_block(&job->next_block, &own, n);
    if (j >= job->p->num_blocks) break;
    macs += cc_gated_dense_block(job->p, j, ex);
  }
  atomic_fetch_add_explicit(&job->macs, macs, memory_order_relaxed);
}

/* Every input the op reads and its output hold data (an invoke with work to
 * do; both ops, the same rule). */
static TfLiteStatus check_tensor_data(TfLiteContext* context, OpData* d, const Tensors* ts) {
  for (int i = 0; i < ts->n; ++i)
    if (ts->t[i] && ts->t[i]->data == NULL)
      FAIL(context, d, "input %d (%s) has no data", i, kInputNames[i]);
  if (ts->head_kernel && ts->head_kernel->data == NULL)
    FAIL(context, d, "input %d (head_kernel) has no data", ts->n);
  if (ts->head_bias && ts->head_bias->data == NULL)
    FAIL(context, d, "input %d (head_bias) has no data", ts->n + 1);
  if (ts->out->data == NULL) FAIL(context, d, "output has no data");
  return kTfLiteOk;
}

/* The process-wide counters (CondCompGetStats) after one invoke: its
 * multiply-adds and how many of its (example, block) gates were on. */
static void record_invoke_stats(const uint8_t* out_mask, int batch, int num_blocks, uint64_t macs) {
  uint64_t active = 0;
  for (size_t i = 0; i < (size_t)batch * num_blocks; ++i) active += out_mask[i] == 1;
  atomic_fetch_add(&g_stat_macs, macs);
  atomic_fetch_add(&g_stat_invokes, 1);
  atomic_fetch_add(&g_stat_active_blocks, active);
  atomic_fetch_add(&g_stat_total_blocks, (uint64_t)batch * num_blocks);
}

/* Runs an op's two phases on `job`: phase 1 (policy and masks, on
 * `gate_threads` threads), then phase 2 (the active blocks, on
 * `block_threads`); then records the invoke in the profile (when profiling)
 * and the process-wide counters, with the multiply-adds phase 2 summed in
 * `macs`. */
static void run_phases(OpData* d, const InvokeShape* s, void* job, cc_task_fn gate_task,
                       int gate_threads, cc_task_fn block_task, int block_threads,
                       atomic_ullong* macs) {
  const int profile = profiling();
  const uint64_t t0 = profile ? now_ns() : 0;
  if (gate_threads > 1) {
    cc_parallel_run(gate_threads, gate_task, job);
  } else {
    gate_task(job, 0, 1);
  }
  const uint64_t t1 = profile ? now_ns() : 0;
  cc_parallel_run(block_threads, block_task, job);
  const uint64_t done = atomic_load(macs);
  if (profile) profile_record(d, s, t0, t1, now_ns(), done);
  record_invoke_stats(s->out_mask, s->batch, s->num_blocks, done);
}

static TfLiteStatus invoke_dense(TfLiteContext* context, TfLiteNode* node) {
  OpData* d = (OpData*)node->user_data;
  TF_LITE_ENSURE_OK_CC(prepare_common_head(context, node, d));
  Tensors ts;
  TF_LITE_ENSURE_OK_CC(get_tensors(context, node, d, &ts));
  cc_gated_dense p;
  p.batch = ts.t[0]->dims->data[0];
  p.in_dim = ts.t[0]->dims->data[1];
  p.num_blocks = ts.t[1]->dims->data[0];
  p.block_size = ts.t[1]->dims->data[2];
  p.in_block_size = d->in_block_size;
  p.activation = d->activation;
  p.threshold = d->threshold;
  p.top_k = (int)d->top_k;
  const int units = p.num_blocks * p.block_size;
  const int head = d->head_units > 0;
  if (ts.out->dims == NULL || ts.out->dims->size != 2 || ts.out->dims->data[0] != p.batch ||
      ts.out->dims->data[1] != (head ? d->head_units : units) ||
      (head && (size_t)p.batch * units * sizeof(float) > d->hidden_cap))
    FAIL(context, d, "output shape changed after Prepare");
  if (p.batch == 0) return kTfLiteOk;
  TF_LITE_ENSURE_OK_CC(check_tensor_data(context, d, &ts));
  p.x = (const float*)ts.t[0]->data;
  TF_LITE_ENSURE_OK_CC(bind_inputs(context, d, &ts, p.in_dim, &p));
  p.y = head ? d->hidden : (float*)ts.out->data;
  p.in_active = d->in_active;
  p.out_mask = d->out_mask;
  p.gate_scale = d->scale_by_gate ? d->gate_scale : NULL;
  p.kernel_finite = !ts.quantized && constant_all_finite(d, 0, ts.t[1]);
  p.policy_finite = constant_all_finite(d, 1, ts.t[3]);
  p.nonzero_at = p.batch == 1 && (p.kernel_finite || p.policy_finite) ? d->nonzero_at : NULL;

  DenseJob job;
  job.p = &p;
  job.d = d;
  atomic_init(&job.next_example, 0);
  job.chunk = p.batch / (4 * d->num_threads) > 1 ? p.batch / (4 * d->num_threads) : 1;
  atomic_init(&job.next_block, 0);
  atomic_init(&job.macs, 0);
  /* Phase 1 in parallel once every thread gets 4 examples. */
  const int gate_threads = p.batch >= 4 * d->num_threads ? d->num_threads : 1;
  const InvokeShape shape = {p.batch, p.in_dim,     p.num_blocks, p.block_size, p.in_block_size,
                             1,       ts.quantized, p.in_active,  p.out_mask};
  run_phases(d, &shape, &job, dense_gate_task, gate_threads, dense_block_task,
             dense_phase2_threads(&p, d), &job.macs);
  if (head) {
    const uint64_t t0 = profiling() ? now_ns() : 0;
    const int H = (int)d->head_units, stride = (int)head_stride(H);
    const float* padded = pad_head_kernel(d, ts.head_kernel, units, H, stride);
    if (padded == NULL) FAIL(context, d, "out of memory for the head kernel");
    const cc_dense_head q = {
        p.batch,
        units,
        p.num_blocks,
        p.block_size,
        H,
        d->hidden,
        p.out_mask,
        padded,
        stride,
        ts.head_bias ? (const float*)ts.head_bias->data : NULL,
        constant_all_finite(d, 2, ts.head_kernel),
        (float*)ts.out->data,
    };
    const uint64_t macs = cc_dense_head_apply(&q);
    if (profiling()) profile_record_head(d, H, now_ns() - t0, macs);
  }
  return kTfLiteOk;
}

/* ------------------------------------------------------------- conv2d */

static TfLiteStatus prepare_conv(TfLiteContext* context, TfLiteNode* node) {
  OpData* d = (OpData*)node->user_data;
  TF_LITE_ENSURE_OK_CC(prepare_common_head(context, node, d));
  Tensors ts;
  TF_LITE_ENSURE_OK_CC(get_tensors(context, node, d, &ts));
  TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts.t[0], 0, 4));
  TF_LITE_ENSURE_OK_CC(expect_rank(context, d, ts.t[1], 1, 5));
  const int64_t B = dim(ts.t[0], 0), H = dim(ts.t[0], 1), W = dim(ts.t[0], 2), C = dim(ts.t[0], 3);
  const int64_t K = dim(ts.t[1], 0), KH = dim(ts.t[1], 1), KW = dim(ts.t[1], 2),
                Ck = dim(ts.t[1], 3), bs = dim(ts.t[1], 4);
  if (C < 1) FAIL(context, d, "x must have at least one channel");
  if (K < 1 || KH < 1 || KW < 1 || bs < 1)
    FAIL(context, d,
         "kernel shape [%lld, %lld, %lld, %lld, %lld] (num_blocks, kh, kw, "
         "in_channels, block_size) has a zero dimension",
         (long long)K, (long long)KH, (long long)KW, (long long)Ck, (long long)bs);
  if (Ck != C)
    FAIL(context, d, "kernel expects %lld input channels but x has %lld", (long long)Ck,
         (long long)C);
  TF_LITE_ENSURE_OK_CC(check_gating_inputs(context, d, &ts, K, bs, C));
  int pad_top = 0, pad_left = 0;
  const int oh = cc_conv_output_size((int)H, (int)KH, (int)d->stride_h, (int)d->dilation_h,
                                     d->padding_same, &pad_top);
  const int ow = cc_conv_output_size((int)W, (int)KW, (int)d->stride_w, (int)d->dilation_w,
                                     d->padding_same, &pad_left);
  if (oh < 0 || ow < 0) FAIL(context, d, "invalid convolution geometry");
  if (B * oh * ow * K * bs > INT_MAX)
    FAIL(context, d, "output would have more than INT_MAX elements");
  d->out_h = oh;
  d->out_w = ow;
  d->pad_top = pad_top;
  d->pad_left = pad_left;
  if (ts.quantized && KH * KW * C > INT_MAX)
    FAIL(context, d, "kernel has more than INT_MAX rows (kh * kw * in_channels)");
  const int shape[4] = {(int)B, oh, ow, (int)(K * bs)};
  TF_LITE_ENSURE_OK_CC(resize_output(context, d, ts.out, 4, shape));
  if (ts.quantized) TF_LITE_ENSURE_OK_CC(alloc_xq(context, d, B, H * W, C / d->in_block_size));
  cc_gated_conv2d geometry;
  memset(&geometry, 0, sizeof(geometry));
  geometry.in_c = (int)C;
  geometry.in_block_size = d->in_block_size;
  geometry.num_blocks = (int)K;
  return alloc_scratch(context, d, B, C / d->in_block_size, K,
                       (int64_t)cc_gated_conv2d_gate_scratch(&geometry), 1);
}

typedef struct {
  cc_gated_conv2d* p;
  OpData* d;
  atomic_int next_example;
  atomic_int next_block;
  atomic_ullong macs;
} ConvJob;

static void conv_gate_task(void* raw, int t, int n) {
  (void)n;
  ConvJob* job = (ConvJob*)raw;
  for (;;) {
    const int e = atomic_fetch_add(&job->next_example, 1);
    if (e >= job->p->batch) break;
    cc_gated_conv2d_gate(job->p, e, e + 1,
                         job->d->fscratch + (size_t)t * cc_gated_conv2d_gate_scratch(job->p));
  }
}

static void conv_block_task(void* raw, int t, int n) {
  (void)t;
  ConvJob* job = (ConvJob*)raw;
  uint64_t macs = 0;
  for (int own = 0;;) {
    const int j = next_output_block(&job->next_block, &own, n);
    if (j >= job->p->num_blocks) break;
    macs += cc_gated_conv2d_block(job->p, j);
  }
  atomic_fetch_add_explicit(&job->macs, macs, memory_order_relaxed);
}

static TfLiteStatus invoke_conv(TfLiteContext* context, TfLiteNode* node) {
  OpData* d = (OpData*)node->user_data;
  TF_LITE_ENSURE_OK_CC(prepare_common_head(context, node, d));
  Tensors ts;
  TF_LITE_ENSURE_OK_CC(get_tensors(context, node, d, &ts));
  cc_gated_conv2d p;
  p.batch = ts.t[0]->dims->data[0];
  p.in_h = ts.t[0]->dims->data[1];
  p.in_w = ts.t[0]->dims->data[2];
  p.in_c = ts.t[0]->dims->data[3];
  p.num_blocks = ts.t[1]->dims->data[0];
  p.kernel_h = ts.t[1]->dims->data[1];
  p.kernel_w = ts.t[1]->dims->data[2];
  p.block_size = ts.t[1]->dims->data[4];
  p.out_h = d->out_h;
  p.out_w = d->out_w;
  p.stride_h = (int)d->stride_h;
  p.stride_w = (int)d->stride_w;
  p.dilation_h = (int)d->dilation_h;
  p.dilation_w = (int)d->dilation_w;
  p.pad_top = d->pad_top;
  p.pad_left = d->pad_left;
  p.in_block_size = d->in_block_size;
  p.activation = d->activation;
  p.threshold = d->threshold;
  p.top_k = (int)d->top_k;
  if (ts.out->dims == NULL || ts.out->dims->size != 4 || ts.out->dims->data[0] != p.batch ||
      ts.out->dims->data[1] != p.out_h || ts.out->dims->data[2] != p.out_w ||
      ts.out->dims->data[3] != p.num_blocks * p.block_size)
    FAIL(context, d, "output shape changed after Prepare");
  if (p.batch == 0 || (size_t)p.out_h * p.out_w == 0) {
    return kTfLiteOk;
  }
  TF_LITE_ENSURE_OK_CC(check_tensor_data(context, d, &ts));
  p.x = (const float*)ts.t[0]->data;
  TF_LITE_ENSURE_OK_CC(bind_inputs(context, d, &ts, p.kernel_h * p.kernel_w * p.in_c, &p));
  p.y = (float*)ts.out->data;
  p.in_active = d->in_active;
  p.out_mask = d->out_mask;
  p.gate_scale = d->scale_by_gate ? d->gate_scale : NULL;

  ConvJob job;
  job.p = &p;
  job.d = d;
  atomic_init(&job.next_example, 0);
  atomic_init(&job.next_block, 0);
  atomic_init(&job.macs, 0);
  /* Phase 1 in parallel once every thread gets 2 examples. */
  const int gate_threads = p.batch >= 2 * d->num_threads ? d->num_threads : 1;
  const InvokeShape shape = {p.batch,      p.in_c,          p.num_blocks,
                             p.block_size, p.in_block_size, p.kernel_h * p.kernel_w,
                             ts.quantized, p.in_active,     p.out_mask};
  run_phases(d, &shape, &job, conv_gate_task, gate_threads, conv_block_task, d->num_threads,
             &job.macs);
  return kTfLiteOk;
}

/* ------------------------------------------------------------- registrations */

/* Padded: a newer runtime that copies a longer TfLiteRegistration reads zeros. */
typedef struct {
  TfLiteRegistration reg;
  char zero_tail[128];
} PaddedRegistration;

static PaddedRegistration g_dense_reg = {
    {init_dense, free_op, prepare_dense, invoke_dense, NULL, CONDCOMP_BUILTIN_CUSTOM,
     CONDCOMP_GATED_DENSE_NAME, 1, NULL, NULL, 0},
    {0}};
static PaddedRegistration g_conv_reg = {
    {init_conv, free_op, prepare_conv, invoke_conv, NULL, CONDCOMP_BUILTIN_CUSTOM,
     CONDCOMP_GATED_CONV2D_NAME, 1, NULL, NULL, 0},
    {0}};

const TfLiteRegistration* CondCompGatedDenseRegistration(void) { return &g_dense_reg.reg; }
const TfLiteRegistration* CondCompGatedConv2DRegistration(void) { return &g_conv_reg.reg; }
