/* What the kernel files of condcomp_kernels.h share (private: the op glue and
 * the test driver include condcomp_kernels.h only).
 *
 * The kernels are split by family and ISA; dispatch lives apart:
 *   cc_activations.c  activation names and cc_apply_activation
 *   cc_gate.c         phase 1, dense and conv: input checks, non-zero input
 *                     blocks, the policy, the masks (threshold, top_k), the
 *                     gate values and the int8 activations, per ISA clone
 *   cc_quantize.c     int8 activation quantization, per ISA
 *   cc_dense_f32.c    phase 2, dense, float weights, per ISA clone
 *   cc_dense_head.c   the output layer folded into a dense op, per ISA clone
 *   cc_conv.c         conv geometry, the output block setup of both conv loops
 *   cc_conv_f32.c     phase 2, conv, float weights, per ISA clone
 *   cc_q8_generic.c   the int8 weight layout (cc_q8_pack) and the portable
 *                     int8 dot kernel
 *   cc_q8_x86.c       x86-64 int8 dot kernels: AVX2, AVX512-VNNI (ymm, zmm),
 *                     AVX-VNNI
 *   cc_q8_neon.c      aarch64 int8 dot kernels: NEON, sdot
 *   cc_q8_dense.c     phase 2, dense, int8 weights
 *   cc_q8_conv.c      phase 2, conv, int8 weights
 *   cc_dispatch.c     CPU features, $CONDCOMP_KERNEL_ISA, the choice of the
 *                     clones and kernels, the entry points of condcomp_kernels.h
 * Templates, instantiated per ISA by #include with macros (not compiled on
 * their own): cc_f32_tile.inc (the float weight-tile loops; cc_gate.c,
 * cc_dense_f32.c), cc_conv_f32_tile.inc (the float conv loops; cc_conv_f32.c).
 *
 * An ISA clone is a function with __attribute__((target(...))) whose body is
 * an always-inline implementation: what it inlines must be visible in its
 * translation unit (here or in its file), so that it compiles for the
 * clone's ISA. Every function one kernel file defines for another is
 * CC_INTERNAL (hidden: the library exports only CONDCOMP_EXPORT symbols).
 */
#ifndef CC_KERNELS_INTERNAL_H_
#define CC_KERNELS_INTERNAL_H_

#include "condcomp_kernels.h"

#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CC_ALWAYS_INLINE static inline __attribute__((always_inline))
#define CC_INTERNAL __attribute__((visibility("hidden")))
#else
#error "the CondComp kernels need GCC or Clang (vector extensions)"
#endif

/* x86 builds not already compiled for AVX2+FMA carry baseline, AVX2 and
 * AVX-512 clones, picked at run time (cc_dispatch.c). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(CONDCOMP_NO_MULTIVERSION) && \
    !(defined(__AVX2__) && defined(__FMA__))
#define CC_X86_MULTIVERSION 1
#else
#define CC_X86_MULTIVERSION 0
#endif

/* One hardware vector of VL floats: 8 on x86-64 (AVX2 ymm; the SSE2 baseline
 * splits it in two), 4 on aarch64, where a wider generic vector is lowered
 * through the stack by GCC (measured: ~1.8 instructions per multiply-add
 * instead of ~0.3), since NEON registers hold 4 floats. Unaligned
 * loads/stores go through memcpy (well defined, one vmovups / ldr q). */
#if defined(__aarch64__)
#define VL 4
#else
#define VL 8
#endif
typedef float vfl __attribute__((vector_size(VL * sizeof(float))));

CC_ALWAYS_INLINE vfl ldv(const float* p) {
  vfl v;
  memcpy(&v, p, sizeof(v));
  return v;
}
CC_ALWAYS_INLINE void stv(float* p, vfl v) { memcpy(p, &v, sizeof(v)); }

/* -------------------------------------------- shared by the block loops */

static inline void fill_nan(float* y, size_t n) {
  const float nan = __builtin_nanf("");
  for (size_t i = 0; i < n; ++i) y[i] = nan;
}

/* scale_by_gate, phase 2: one computed block's bs outputs times its gate value. */
static inline void scale_block(float* y, int bs, const float* gate_scale, size_t at) {
  if (gate_scale == NULL) return;
  const float g = gate_scale[at];
  for (int c = 0; c < bs; ++c) y[c] *= g;
}

/* -------------------------------------------------------------- phase 1 */

/* Phase 1 of dense examples [b, e) / of conv examples [b, e), per ISA
 * (cc_gate.c): the bodies of cc_gated_dense_gate / cc_gated_conv2d_gate. */
CC_INTERNAL void cc_dense_gate_default(const cc_gated_dense* p, int b, int e, float* logits);
CC_INTERNAL void cc_conv_gate_default(const cc_gated_conv2d* p, int b, int e, float* scratch);
#if CC_X86_MULTIVERSION
CC_INTERNAL void cc_dense_gate_avx2(const cc_gated_dense* p, int b, int e, float* logits);
CC_INTERNAL void cc_dense_gate_avx512(const cc_gated_dense* p, int b, int e, float* logits);
CC_INTERNAL void cc_conv_gate_avx2(const cc_gated_conv2d* p, int b, int e, float* scratch);
#endif

/* Activations as int8, `rows` rows of n_blocks input blocks of ibs values
 * (x: [rows][n_blocks * ibs] floats; xq: [rows][n_blocks][padded] bytes,
 * padded = ibs rounded up to a multiple of 4, the padding zero): block b is
 * xq = clamp(round-half-even(x * k[b]), -127, 127) computed in double
 * (defined for subnormal scales too); a block with k[b] == 0 is never read
 * and may be left unwritten (the layers give k[b] == 0 to all-zero blocks).
 * k = 127 / max|x| for per-example scales (scale max|x| / 127), 1 /
 * input_scale for static ones.
 * keras_condcomp.reference.quantize_activations is the same computation.
 * Every variant gives the same bytes (cc_quantize.c). A dense example is one
 * row; a conv example is its H*W positions, the rows of one call. */
typedef void (*quantize_fn)(const float* x, size_t rows, int n_blocks, int ibs, const double* k,
                            int8_t* xq);
CC_INTERNAL void cc_quantize_default(const float* x, size_t rows, int n_blocks, int ibs,
                                     const double* k, int8_t* xq);
#if defined(__x86_64__) || defined(__i386__)
/* 16 values per step, then 8 (AVX-512: the last < 8 under a mask). */
CC_INTERNAL void cc_quantize_avx2(const float* x, size_t rows, int n_blocks, int ibs,
                                  const double* k, int8_t* xq);
CC_INTERNAL void cc_quantize_avx512(const float* x, size_t rows, int n_blocks, int ibs,
                                    const double* k, int8_t* xq);
#endif
#if defined(__aarch64__)
/* 16 values per step, in double as the portable one. */
CC_INTERNAL void cc_quantize_neon(const float* x, size_t rows, int n_blocks, int ibs,
                                  const double* k, int8_t* xq);
#endif
/* The variant for this CPU (cc_dispatch.c). */
CC_INTERNAL quantize_fn cc_select_quantize(void);

/* ------------------------------------------------------- phase 2, float */

/* Output block j with float weights, per ISA (cc_dense_f32.c, cc_conv_f32.c). */
CC_INTERNAL uint64_t cc_dense_block_f32_default(const cc_gated_dense* p, int j, int* examples);
CC_INTERNAL uint64_t cc_conv_block_f32_default(const cc_gated_conv2d* p, int j);
#if CC_X86_MULTIVERSION
CC_INTERNAL uint64_t cc_dense_block_f32_avx2(const cc_gated_dense* p, int j, int* examples);
CC_INTERNAL uint64_t cc_dense_block_f32_avx512(const cc_gated_dense* p, int j, int* examples);
CC_INTERNAL uint64_t cc_conv_block_f32_avx2(const cc_gated_conv2d* p, int j);
CC_INTERNAL uint64_t cc_conv_block_f32_avx512(const cc_gated_conv2d* p, int j);
#endif

/* The folded output layer, per ISA (cc_dense_head.c). */
CC_INTERNAL uint64_t cc_dense_head_default(const cc_dense_head* p);
#if CC_X86_MULTIVERSION
CC_INTERNAL uint64_t cc_dense_head_avx2(const cc_dense_head* p);
#endif

/* --------------------------------------------------------------- conv2d */

/* Example e's output block j before its products: NaN everywhere (non-finite
 * input) or zeros (block off) and returns 0, or fills it with `init` (the
 * bias, or zeros when NULL) and returns 1 (cc_conv.c). */
CC_INTERNAL int cc_conv_block_begin(const cc_gated_conv2d* p, int j, int e, const float* init);

/* Float conv blocks one vector wide are computed two at a time (cc_conv_f32_tile.inc):
 * example e's on blocks (mask_row[b] == 1) in ascending order, paired first
 * with second, third with fourth, ... For on block j: the block it pairs
 * with when j is the first of a pair, -1 when j is alone (the last of an odd
 * count), CC_CONV_PAIRED when j is the second (the first one's task computes
 * it, its setup included). */
#define CC_CONV_PAIRED (-2)
static inline int conv_pair_partner(const uint8_t* mask_row, int K, int j) {
  int rank = 0;
  for (int b = 0; b < j; ++b) rank += mask_row[b] == 1;
  if (rank & 1) return CC_CONV_PAIRED;
  for (int b = j + 1; b < K; ++b)
    if (mask_row[b] == 1) return b;
  return -1;
}

/* The input row of output row oh under tap row kh, or -1 (padding). */
static inline int conv_input_row(const cc_gated_conv2d* p, int oh, int kh) {
  const int ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
  return ih >= 0 && ih < p->in_h ? ih : -1;
}

/* The input column of output column ow under tap column kw, or -1 (padding). */
static inline int conv_input_col(const cc_gated_conv2d* p, int ow, int kw) {
  const int iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
  return iw >= 0 && iw < p->in_w ? iw : -1;
}

/* The run [lo, hi) of t in [0, n) whose position base + t * step lies in
 * [0, size) (one run: the position grows with t). */
static inline void conv_inside_run(int base, int step, int n, int size, int* lo, int* hi) {
  int a = 0;
  while (a < n && (base + a * step < 0 || base + a * step >= size)) ++a;
  int b = a;
  while (b < n && base + b * step >= 0 && base + b * step < size) ++b;
  *lo = a;
  *hi = b;
}

/* The tap rows [kh0, kh1) of output row oh that read inside the input. */
static inline void conv_inside_rows(const cc_gated_conv2d* p, int oh, int* kh0, int* kh1) {
  conv_inside_run(oh * p->stride_h - p->pad_top, p->dilation_h, p->kernel_h, p->in_h, kh0, kh1);
}

/* The output columns [lo, hi) whose tap column kw reads inside the input. */
static inline void conv_inside_cols(const cc_gated_conv2d* p, int kw, int* lo, int* hi) {
  conv_inside_run(kw * p->dilation_w - p->pad_left, p->stride_w, p->out_w, p->in_w, lo, hi);
}

/* The tap columns [kw0, kw1) of output column ow that read inside the input. */
static inline void conv_inside_tap_cols(const cc_gated_conv2d* p, int ow, int* kw0, int* kw1) {
  conv_inside_run(ow * p->stride_w - p->pad_left, p->dilation_w, p->kernel_w, p->in_w, kw0, kw1);
}

/* The outputs [o, end) of n along one axis whose inside taps (`taps`:
 * conv_inside_rows or conv_inside_tap_cols) are the same [t0, t1) as o's:
 * returns end. */
static inline int conv_same_taps(const cc_gated_conv2d* p, int o, int n,
                                 void (*taps)(const cc_gated_conv2d*, int, int*, int*), int* t0,
                                 int* t1) {
  taps(p, o, t0, t1);
  int end = o + 1, a, b;
  while (end < n) {
    taps(p, end, &a, &b);
    if (a != *t0 || b != *t1) break;
    ++end;
  }
  return end;
}

/* ---------------------------------------------------- int8 (q8) kernels */

/* Integer dot products of int8 activations with int8 weights over one strip
 * of a packed tile: `cols` <= CC_Q8_STRIP outputs, stored [Q][cols][4] (quad
 * q holds rows 4q..4q+3 of each output, rows past the block are 0 in both),
 * so a strip is one contiguous run read front to back. Every kernel computes,
 * exactly in int32, acc[c] = sum_r xq[r] * w(r, c), then y[c] += s * acc[c]:
 * only that last float step can differ between kernels (fused or not).
 * |xq|, |w| <= 127 (never -128), so no product pair or sum overflows. */
#define CC_Q8_STRIP 32
/* In the x86-64 kernels, strips of at least this many quads skip their zero
 * quads by a mask (cc_q8_x86.c). */
#define CC_Q8_MASKED_QUADS 16
/* n pixels (a conv's output columns; 1 for dense) against the same strip:
 * pixel p reads xq + p * x_step and adds into y + p * y_step, so the
 * per-call costs are paid once per row of pixels, not per pixel. */
typedef void (*dot_q8_fn)(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step,
                          float s, float* y, size_t y_step, int n);
/* 2 <= n <= CC_Q8_GROUP examples (their activations xq[g], scales s[g], outputs
 * y[g]) against one full strip of CC_Q8_STRIP outputs, each weight byte
 * loaded once for the group: y[g] += s[g] * (xq[g] . w). `sums` are the
 * strip's CC_Q8_STRIP offset sums (cc_q8_offset_sums). NULL where this CPU
 * has no such kernel (then each example takes dot_q8_fn). */
#define CC_Q8_GROUP 4
typedef void (*dot_q8_group_fn)(const int8_t* w, const int32_t* sums, int Q, int n,
                                const int8_t* const* xq, const float* s, float* const* y);
/* One example against n full strips (t = 0..n-1, at tiles[t] + offset, with
 * the activations xq[t] and scales s[t] of their input blocks), in turn:
 * y[0:CC_Q8_STRIP] += s[t] * (xq[t] . w_t). NULL where this CPU has none. */
#define CC_Q8_TILES 16
typedef void (*dot_q8_tiles_fn)(const int8_t* const* tiles, size_t offset, int Q, int n,
                                const int8_t* const* xq, const float* s, float* y);
/* The taps of one conv-kernel call: taps_h consecutive tap rows by taps_w
 * consecutive tap columns, and how far apart the weight strips (bytes), the
 * offset sums (int32) and the activations (bytes) of consecutive tap rows
 * (*_step_h) and tap columns (*_step_w) lie. */
typedef struct {
  int taps_h, taps_w;
  size_t w_step_h, w_step_w;
  size_t sums_step_h, sums_step_w;
  size_t x_step_h, x_step_w;
} cc_q8_conv_taps;
/* A conv's n output pixels against the strips of all the taps of `taps`
 * (tap (a, b)'s strip at w + a * w_step_h + b * w_step_w, its `cols` offset
 * sums (cc_q8_offset_sums) at sums + a * sums_step_h + b * sums_step_w, the
 * activations pixel p reads for it at xq + a * x_step_h + b * x_step_w +
 * p * x_step, with their offset: xq ^ 0x80, cc_conv_q8_offset_activations),
 * the int32 sums over all taps taken before the one float step:
 * y[p] += s * sum_(a, b) (xq . w_ab) (with `store` 0; 1: y[p] = 0 + that,
 * y not read first), for strips of 8, 16 or 32 outputs and
 * taps_h * taps_w * Q within CC_Q8_MAX_QUADS, n <= CC_Q8_CONV_PIXELS. NULL
 * where this CPU has none. */
#define CC_Q8_CONV_PIXELS 8
typedef void (*dot_q8_conv_fn)(const int8_t* w, const int32_t* sums, const cc_q8_conv_taps* taps,
                               int Q, int cols, const int8_t* xq, size_t x_step, int n, float s,
                               float* y, size_t y_step, int store);
/* The offset sums of a kernel_q packed by cc_q8_pack with `tiles` tiles of
 * tile_bytes each: int32 [tiles][bs] after the tiles, output c of tile
 * (j, i) = 128 * the sum of its weights w(j, d, c) (mod 2^32; exact for
 * tiles of at most CC_Q8_MAX_QUADS quads). Read with unaligned loads. */
static inline const int32_t* cc_q8_offset_sums(const int8_t* kernel_q, size_t tiles,
                                               size_t tile_bytes) {
  return (const int32_t*)(const void*)(kernel_q + tiles * tile_bytes);
}
/* The dot_q8_fn `name` from the one-pixel kernel `one` (same arguments but
 * x_step, y_step and n). */
#define CC_Q8_PIXELS(name, one)                                                            \
  CC_INTERNAL void name(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step, \
                        float s, float* y, size_t y_step, int n) {                         \
    for (int p = 0; p < n; ++p)                                                            \
      one(w, Q, cols, xq + (size_t)p * x_step, s, y + (size_t)p * y_step);                 \
  }

/* At most this many quads (4 rows each) per dot call: 4 * 32767 products of
 * |xq|, |w| <= 127 sum to < 2^31, so the int32 accumulators never overflow;
 * longer input blocks are summed chunk by chunk in float. */
#define CC_Q8_MAX_QUADS 32767

/* Which kernels each compiler builds (the others are left out). x86-64:
 * the VNNI kernels are built by GCC only (Clang builds keep the AVX2
 * kernel): CC_HAVE_VNNI_CLONE the AVX512-VNNI ymm kernel,
 * CC_HAVE_VNNI_ZMM_CLONE the zmm kernels and the AVX-VNNI one, which
 * CC_Q8_VNNI_EMULATED (a test build, tests/test_native_fuzz.py: the ymm
 * kernel with SIMDe's vpdpbusd on AVX2) leaves out. aarch64: the sdot
 * kernel where GCC can compile it for the dot-product extension alone
 * (target pragma) or where the whole build targets it. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 11
#define CC_HAVE_VNNI_CLONE 1
#if !defined(CC_Q8_VNNI_EMULATED)
#define CC_HAVE_VNNI_ZMM_CLONE 1
#endif
#endif
#if defined(__aarch64__) && defined(__linux__) && \
    ((defined(__GNUC__) && !defined(__clang__)) || defined(__ARM_FEATURE_DOTPROD))
#define CC_HAVE_DOTPROD_CLONE 1
#endif

/* The kernels (cc_q8_generic.c, cc_q8_x86.c, cc_q8_neon.c). */
CC_INTERNAL void cc_dot_q8_generic(const int8_t* w, int Q, int cols, const int8_t* xq,
                                   size_t x_step, float s, float* y, size_t y_step, int n);
/* Columns [0, n) of a strip whose quads are `ld` bytes apart, portable C
 * (the generic kernel, the vector kernels' last columns). */
CC_INTERNAL void cc_dot_q8_columns(const int8_t* w, size_t ld, int Q, int n, const int8_t* xq,
                                   float s, float* y);
#if defined(__x86_64__) || defined(__i386__)
/* Each ymm kernel comes with its batch-1 tiles kernel (dot_q8_tiles_fn). */
CC_INTERNAL void cc_dot_q8_avx2(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step,
                                float s, float* y, size_t y_step, int n);
CC_INTERNAL void cc_dot_q8_avx2_tiles(const int8_t* const* tiles, size_t offset, int Q, int n,
                                      const int8_t* const* xq, const float* s, float* y);
#if defined(CC_HAVE_VNNI_CLONE)
CC_INTERNAL void cc_dot_q8_avx512vnni(const int8_t* w, int Q, int cols, const int8_t* xq,
                                      size_t x_step, float s, float* y, size_t y_step, int n);
CC_INTERNAL void cc_dot_q8_avx512vnni_tiles(const int8_t* const* tiles, size_t offset, int Q, int n,
                                            const int8_t* const* xq, const float* s, float* y);
#endif
#if defined(CC_HAVE_VNNI_ZMM_CLONE)
CC_INTERNAL void cc_dot_q8_avx512vnni_zmm(const int8_t* w, int Q, int cols, const int8_t* xq,
                                          size_t x_step, float s, float* y, size_t y_step, int n);
CC_INTERNAL void cc_dot_q8_avx512vnni_zmm_group(const int8_t* w, const int32_t* sums, int Q, int n,
                                                const int8_t* const* xq, const float* s,
                                                float* const* y);
CC_INTERNAL void cc_dot_q8_avx512vnni_zmm_tiles(const int8_t* const* tiles, size_t offset, int Q,
                                                int n, const int8_t* const* xq, const float* s,
                                                float* y);
CC_INTERNAL void cc_dot_q8_avx512vnni_zmm_conv(const int8_t* w, const int32_t* sums,
                                               const cc_q8_conv_taps* taps, int Q, int cols,
                                               const int8_t* xq, size_t x_step, int n, float s,
                                               float* y, size_t y_step, int store);
CC_INTERNAL void cc_dot_q8_avxvnni(const int8_t* w, int Q, int cols, const int8_t* xq,
                                   size_t x_step, float s, float* y, size_t y_step, int n);
CC_INTERNAL void cc_dot_q8_avxvnni_tiles(const int8_t* const* tiles, size_t offset, int Q, int n,
                                         const int8_t* const* xq, const float* s, float* y);
#endif
#endif
#if defined(__aarch64__)
/* Each kernel comes with its batch-1 tiles kernel (dot_q8_tiles_fn). */
CC_INTERNAL void cc_dot_q8_neon(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step,
                                float s, float* y, size_t y_step, int n);
CC_INTERNAL void cc_dot_q8_neon_tiles(const int8_t* const* tiles, size_t offset, int Q, int n,
                                      const int8_t* const* xq, const float* s, float* y);
#if defined(CC_HAVE_DOTPROD_CLONE)
CC_INTERNAL void cc_dot_q8_sdot(const int8_t* w, int Q, int cols, const int8_t* xq, size_t x_step,
                                float s, float* y, size_t y_step, int n);
CC_INTERNAL void cc_dot_q8_sdot_tiles(const int8_t* const* tiles, size_t offset, int Q, int n,
                                      const int8_t* const* xq, const float* s, float* y);
#endif
#endif

/* The int8 kernels this CPU runs, chosen once (cc_dispatch.c). */
typedef struct {
  dot_q8_fn dot;
  dot_q8_group_fn group; /* NULL where this CPU has none, as the two below */
  dot_q8_tiles_fn tiles;
  dot_q8_conv_fn conv;
  const char* isa; /* for cc_kernel_isa_q8 */
} cc_q8_kernels;
CC_INTERNAL const cc_q8_kernels* cc_select_q8(void);

/* Output block j with int8 weights (cc_q8_dense.c, cc_q8_conv.c). */
CC_INTERNAL uint64_t cc_dense_block_q8(const cc_gated_dense* p, int j, int* examples);
CC_INTERNAL uint64_t cc_conv_block_q8(const cc_gated_conv2d* p, int j);
/* How many outputs of each of conv p's blocks the conv kernel takes
 * (cc_select_q8()->conv): all of them (block_size) where this CPU has one
 * and it takes every strip of a block (the last one 8, 16 or 32 wide), else
 * none (dot_q8_fn takes them). Where it takes them, phase 1 stores the
 * activations with their offset, xq ^ 0x80 (= xq + 128 as unsigned bytes:
 * what vpdpbusd multiplies), so that the kernel's loads need no instruction
 * to make them unsigned. */
CC_INTERNAL int cc_conv_q8_fused_outputs(const cc_gated_conv2d* p);
static inline int cc_conv_q8_offset_activations(const cc_gated_conv2d* p) {
  return p->kernel_q != NULL && cc_conv_q8_fused_outputs(p) == p->block_size;
}

/* One strip (`cols` outputs, [Q][cols][4]) of a tile against the activations
 * of n pixels: y += s * (xq . w) (steps as in dot_q8_fn). */
static inline void dot_q8_strip(dot_q8_fn dot, const int8_t* strip, int Q, int cols,
                                const int8_t* xq, size_t x_step, float s, float* y, size_t y_step,
                                int n) {
  for (int q0 = 0; q0 < Q; q0 += CC_Q8_MAX_QUADS) {
    const int nq = Q - q0 < CC_Q8_MAX_QUADS ? Q - q0 : CC_Q8_MAX_QUADS;
    dot(strip + (size_t)q0 * cols * 4, nq, cols, xq + (size_t)q0 * 4, x_step, s, y, y_step, n);
  }
}

/* y = act(y * kernel_scale + b) over one output block of bs units, at
 * `rows` places `stride` floats apart (the pixels of a conv): cc_q8_finish.c,
 * the ISA variant for this CPU (cc_dispatch.c). */
CC_INTERNAL void cc_finish_q8_outputs(float* y, size_t rows, size_t stride, int bs,
                                      const float* scale, const float* bias, int activation);
CC_INTERNAL void cc_finish_q8_default(float* y, size_t rows, size_t stride, int bs,
                                      const float* scale, const float* bias, int activation);
#if CC_X86_MULTIVERSION
CC_INTERNAL void cc_finish_q8_avx2(float* y, size_t rows, size_t stride, int bs, const float* scale,
                                   const float* bias, int activation);
CC_INTERNAL void cc_finish_q8_avx512(float* y, size_t rows, size_t stride, int bs,
                                     const float* scale, const float* bias, int activation);
#endif

#endif /* CC_KERNELS_INTERNAL_H_ */
