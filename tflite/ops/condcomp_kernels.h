/* Portable CondComp compute kernels (no TFLite types, plain C11).
 *
 * Semantics: docs/architecture.md "Inference semantics of a gated layer".
 * These functions are shared by every runtime glue (TFLite C API desktop
 * registration, Android/LiteRT) and are cross-compiled for aarch64/NEON as is:
 * the inner loops use GCC/Clang vector extensions (8 floats), which lower to
 * AVX2/FMA on x86-64 clones, SSE2 by default, and two NEON q-registers on
 * aarch64. Implemented by the cc_* files of this directory, one per kernel
 * family and ISA (the list: cc_kernels_internal.h).
 *
 * Weights are stored block-major so an output block's weights are contiguous:
 *   GatedDense:  kernel_bm[K][D_in][bs]              (Keras kernel is [D_in][K*bs])
 *   GatedConv2D: kernel_bm[K][KH][KW][C_in][bs]      (Keras kernel is [KH][KW][C_in][K*bs])
 * The rows of an input block (in_block_size consecutive inputs) of one output
 * block are then one contiguous [in_block_size][bs] tile.
 */
#ifndef CONDCOMP_KERNELS_H_
#define CONDCOMP_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CC_ACT_LINEAR = 0,
  CC_ACT_RELU,
  CC_ACT_RELU6,
  CC_ACT_SIGMOID,
  CC_ACT_TANH,
  CC_ACT_ELU,
  CC_ACT_SELU,
  CC_ACT_SOFTPLUS,
  CC_ACT_SOFTSIGN,
  CC_ACT_SILU,
  CC_ACT_GELU,
  CC_ACT_LEAKY_RELU,
  CC_ACT_HARD_SIGMOID,
  CC_ACT_HARD_SILU,
  CC_ACT_MISH,
  CC_ACT_EXPONENTIAL,
  CC_ACT_COUNT
} cc_activation;

/* Keras activation name -> id, or -1. Accepts the Keras aliases
 * ("linear"/"None", "swish" = "silu", "hard_swish" = "hard_silu"). */
int cc_activation_from_name(const char* name, size_t len);
/* Comma-separated list of the accepted names, for error messages. */
const char* cc_activation_names(void);

/* Applies `act` in place to n floats. */
void cc_apply_activation(int act, float* v, size_t n);
/* The same on `rows` runs of n floats, `stride` floats apart (an output
 * block at every pixel of a conv). */
void cc_apply_activation_rows(int act, float* v, size_t rows, size_t n, size_t stride);

/* out_mask value of every block of an example whose input holds a NaN or an
 * Inf: no block is computed and the example's whole output row is NaN (the
 * semantics of keras_condcomp.layers.nonfinite_rows_to_nan). Otherwise out_mask
 * entries are 0 (off) or 1 (on). */
#define CC_ROW_NONFINITE 2

/* ---------------------------------------------------------------- Dense */

typedef struct {
  int batch;                  /* B >= 0 */
  int in_dim;                 /* D_in >= 1 */
  int num_blocks;             /* K >= 1 */
  int block_size;             /* bs >= 1, units = K * bs */
  int in_block_size;          /* divides in_dim; input blocks that are all zero are skipped */
  int activation;             /* cc_activation */
  float threshold;            /* block on iff sigmoid(policy logit) > threshold */
  const float* x;             /* [B][D_in] */
  const float* kernel_bm;     /* [K][D_in][bs] */
  const float* bias;          /* [K*bs] or NULL */
  const float* policy_kernel; /* [D_in][K] */
  const float* policy_bias;   /* [K] */
  float* y;                   /* [B][K*bs] */
  /* Scratch owned by the caller: */
  uint8_t* in_active; /* [B][D_in / in_block_size] */
  uint8_t* out_mask;  /* [B][K] */
  /* Last, so positional initializers that stop earlier leave it 0. */
  int top_k; /* > 0: each example's top_k blocks of largest sigmoid(logit)
                (lowest index first on ties) instead of the threshold rule */
  /* Dynamic-range int8 (then kernel_bm is unused; NULL: float kernel_bm).
   * Weight (j, d, c) is w(j, d, c) * kernel_scale[j * bs + c] with the int8
   * w(j, d, c) packed by cc_q8_pack: tile (j, i) of input block i is
   * Q * 4 * bs bytes, Q = ceil(in_block_size / 4): strips of 32 outputs (the
   * last one narrower), each [Q][cols][4], quad q holding rows 4q..4q+3 of
   * the block for each output (rows past the block 0). Activations are
   * quantized in phase 1, per (example, input block): xq = round(x * 127 /
   * max|x|) (half to even), scale = max|x| / 127, and the block products are
   * exact int32 dot products: y = act(sum_i scale_i * (xq_i . w_i) * kernel_scale + b).
   * After the tiles (a multiple of 4 bytes from kernel_q), int32
   * offset_sums[j][i][c] = 128 * sum_r w(j, i * in_block_size + r, c) over
   * the rows of tile (j, i) (mod 2^32): the kernels that make the
   * activations unsigned (xq + 128) subtract them. cc_q8_packed_size counts
   * both. */
  const int8_t* kernel_q;    /* [K][D_in / in_block_size][Q * 4 * bs] int8,
                                then [K][D_in / in_block_size][bs] int32 */
  const float* kernel_scale; /* [K*bs] */
  int8_t* xq;                /* scratch [B][D_in / in_block_size][4 * Q] */
  float* xq_scale;           /* scratch [B][D_in / in_block_size] */
  /* Static-scale int8 (NULL: the per-example scales above): input block i
   * has the fixed scale input_scale[i] (finite, > 0; calibrated offline) and
   * xq = clamp(round-half-even(x * (1 / input_scale[i])), -127, 127) in double. */
  const float* input_scale; /* [D_in / in_block_size] */
  /* scale_by_gate (NULL: off): scratch [B][K]; phase 1 stores each block's
   * gate value, sigmoid(logit) if the block is on (else 0), and phase 2
   * multiplies a computed block's outputs, after the activation, by it
   * (keras_condcomp.reference.block_scale). */
  float* gate_scale;
  /* Nonzero when every weight of kernel_bm (float kernels) / of policy_kernel
   * is finite (the TFLite glue checks constant tensors once). Only then may a
   * product skip the rows of inputs that are exactly 0, which add exact zeros
   * (0 * w = 0; with an infinite or NaN weight they must add NaN). */
  int kernel_finite;
  int policy_finite;
  /* Scratch [D_in + 1] or NULL, used at batch 1 when a flag above is set:
   * phase 1 stores the count n of the example's non-zero inputs in
   * nonzero_at[0] and their indices, ascending, in nonzero_at[1..n] (inputs
   * of all-zero blocks left out), for the policy product and phase 2. */
  int* nonzero_at;
} cc_gated_dense;

/* Bytes of cc_q8_pack's output (0 for invalid sizes). */
size_t cc_q8_packed_size(int K, int D, int bs, int in_block_size);
/* int8 block-major [K][D][bs] -> the packed layout of cc_gated_dense.kernel_q. */
void cc_q8_pack(const int8_t* kernel_bm, int K, int D, int bs, int in_block_size, int8_t* packed);
/* The int8 dot-product kernel this CPU runs ("avx512-vnni vpdpbusd", "avx2 vpmaddubsw",
 * "neon sdot", ...). */
const char* cc_kernel_isa_q8(void);

/* Examples sharing one pass over the policy kernel in phase 1. */
#define CC_GATE_GROUP 8

/* Phase 1, examples [e_begin, e_end): finds the non-zero input blocks and
 * evaluates the policy (skipping zero input blocks). `logits` is scratch of
 * CC_GATE_GROUP * K floats. */
void cc_gated_dense_gate(const cc_gated_dense* p, int e_begin, int e_end, float* logits);

/* Phase 2, output block j: computes y[:, j*bs:(j+1)*bs] for every example
 * whose mask has block j on (only over its non-zero input blocks) and writes
 * exact zeros for the others. `examples` is scratch of 2*B ints. Returns the
 * number of multiply-adds done (for profiling). */
uint64_t cc_gated_dense_block(const cc_gated_dense* p, int j, int* examples);

/* The dense output layer after a gated dense layer, folded into its op
 * (option head_units): y[e][o] = bias[o] + sum_u h[e][u] * kernel[u][o] over
 * the gated layer's outputs h [B][units] (exact zeros in its off blocks).
 * With kernel_finite (every weight finite) the rows of off blocks are
 * skipped: they add exact zeros. Otherwise every row multiplies, as in the
 * dense product (0 * Inf is NaN). An example whose out_mask row is
 * CC_ROW_NONFINITE gets a NaN row. */
typedef struct {
  int batch;               /* B >= 0 */
  int units;               /* num_blocks * block_size of the gated layer */
  int num_blocks;          /* K */
  int block_size;          /* bs */
  int out_dim;             /* H >= 1 */
  const float* h;          /* [B][units] */
  const uint8_t* out_mask; /* [B][K], the gated layer's */
  const float* kernel;     /* [units][kernel_stride], columns >= H zero */
  int kernel_stride;       /* H rounded up to a multiple of CC_HEAD_ALIGN */
  const float* bias;       /* [H] or NULL */
  int kernel_finite;
  float* y; /* [B][H] */
} cc_dense_head;

/* Floats the rows of cc_dense_head.kernel are padded to (a whole vector). */
#define CC_HEAD_ALIGN 8

/* Computes p->y; returns the multiply-adds done. */
uint64_t cc_dense_head_apply(const cc_dense_head* p);

/* ---------------------------------------------------------------- Conv2D */

typedef struct {
  int batch, in_h, in_w, in_c; /* input [B][H][W][C_in] */
  int out_h, out_w;            /* output [B][OH][OW][K*bs] */
  int kernel_h, kernel_w;
  int stride_h, stride_w;
  int dilation_h, dilation_w;
  int pad_top, pad_left;      /* implicit zero padding ("same") */
  int num_blocks, block_size; /* K, bs */
  int in_block_size;          /* divides C_in */
  int activation;
  float threshold;
  const float* x;
  const float* kernel_bm;     /* [K][KH][KW][C_in][bs] */
  const float* bias;          /* [K*bs] or NULL */
  const float* policy_kernel; /* [C_in][K] */
  const float* policy_bias;   /* [K] */
  float* y;
  uint8_t* in_active; /* [B][C_in / in_block_size] */
  uint8_t* out_mask;  /* [B][K] */
  int top_k;          /* as in cc_gated_dense */
  /* Dynamic-range int8 (then kernel_bm is unused; NULL: float kernel_bm):
   * the int8 kernel [K][KH][KW][C_in][bs] is [K][KH*KW*C_in][bs] packed by
   * cc_q8_pack(..., K, KH*KW*C_in, bs, in_block_size), so tile (j, t*n_in + i)
   * is tap t = kh*KW + kw of channel block i (its offset sums likewise at
   * (j, t*n_in + i)). Activations are quantized per
   * (example, channel block) over all positions (one scale), and each
   * (position, tap, channel block) product is an exact int32 dot product:
   * y = act(sum_{tap, i} scale_i * (xq . w) * kernel_scale + b). */
  const int8_t* kernel_q;
  const float* kernel_scale; /* [K*bs] */
  int8_t* xq;                /* scratch [B][H*W][C_in / in_block_size][4 * Q] */
  float* xq_scale;           /* scratch [B][C_in / in_block_size] */
  const float* input_scale;  /* [C_in / in_block_size] or NULL, as in cc_gated_dense */
  float* gate_scale;         /* [B][K] or NULL, as in cc_gated_dense */
} cc_gated_conv2d;

/* Phase 1 for examples [e_begin, e_end): channel-block activity, spatial mean
 * and policy. `scratch` holds cc_gated_conv2d_gate_scratch(p) floats and is
 * 8-byte aligned (as malloc'd memory is, and any even offset in it). */
void cc_gated_conv2d_gate(const cc_gated_conv2d* p, int e_begin, int e_end, float* scratch);

/* The floats of scratch cc_gated_conv2d_gate needs, an even number (from
 * in_c, in_block_size and num_blocks). */
size_t cc_gated_conv2d_gate_scratch(const cc_gated_conv2d* p);

/* Phase 2 for output block j, all examples. */
uint64_t cc_gated_conv2d_block(const cc_gated_conv2d* p, int j);

/* Output size of one spatial dimension, TF conventions; padding_same != 0 for
 * "same". Returns -1 on invalid arguments. Also returns the leading pad. */
int cc_conv_output_size(int in, int kernel, int stride, int dilation, int padding_same,
                        int* pad_before);

/* Which code path the multiversioned kernels selected ("avx2+fma", "default",
 * "neon", ...), for benchmark reports. */
const char* cc_kernel_isa(void);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_KERNELS_H_ */
