/* The int8 dot kernels of aarch64 (dot_q8_fn of cc_kernels_internal.h):
 *   cc_dot_q8_neon   plain NEON (smull, sadalp), every arm64 CPU
 *   cc_dot_q8_sdot   the dot-product extension (sdot), where built
 *                    (CC_HAVE_DOTPROD_CLONE)
 * both instances of one template (CC_Q8_NEON_KERNEL) with the ISA's
 * multiply-add step, each with its batch-1 tiles kernel (name_tiles);
 * cc_select_q8 (cc_dispatch.c) picks by CPU.
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
#include "cc_kernels_internal.h"

#include <string.h>

#if defined(__aarch64__)
/* NEON: smull/smull2 of 4 outputs x 4 rows, pairwise adds (a pair sum is at
 * most 2 * 127 * 127 < 2^15, no overflow) and sadalp into one int32 lane per output: 16
 * multiply-adds per 4 instructions. With the dot-product extension, sdot does it in one. A full
 * strip keeps 8 accumulators (32 outputs). */
#define CC_Q8_NEON_KERNEL(name, STEP)                                                           \
  /* The int32 sums xq . w of one full strip (128 bytes per quad) into a[0..7], 4 outputs       \
   * each. */                                                                                   \
  CC_ALWAYS_INLINE void name##_sums(const int8_t* w, int Q, const int8_t* xq, int32x4_t a[8]) { \
    for (int t = 0; t < 8; ++t) a[t] = vdupq_n_s32(0);                                          \
    const int8_t* wp = w;                                                                       \
    for (int q = 0; q < Q; ++q, wp += 128) {                                                    \
      int32_t word;                                                                             \
      memcpy(&word, xq + 4 * q, sizeof(word));                                                  \
      const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(word));                             \
      for (int t = 0; t < 8; ++t) STEP(a[t], vld1q_s8(wp + 16 * t));                            \
    }                                                                                           \
  }                                                                                             \
  CC_ALWAYS_INLINE void name##_one(const int8_t* w, int Q, int cols, const int8_t* xq, float s, \
                                   float* y) {                                                  \
    const size_t ld = (size_t)cols * 4;                                                         \
    const float32x4_t sv = vdupq_n_f32(s);                                                      \
    if (cols == CC_Q8_STRIP) {                                                                  \
      int32x4_t a[8];                                                                           \
      name##_sums(w, Q, xq, a);                                                                 \
      for (int t = 0; t < 8; ++t)                                                               \
        vst1q_f32(y + 4 * t, vfmaq_f32(vld1q_f32(y + 4 * t), vcvtq_f32_s32(a[t]), sv));         \
      return;                                                                                   \
    }                                                                                           \
    int c = 0;                                                                                  \
    for (; c + 4 <= cols; c += 4) {                                                             \
      int32x4_t a0 = vdupq_n_s32(0);                                                            \
      const int8_t* wp = w + (size_t)c * 4;                                                     \
      for (int q = 0; q < Q; ++q, wp += ld) {                                                   \
        int32_t word;                                                                           \
        memcpy(&word, xq + 4 * q, sizeof(word));                                                \
        const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(word));                           \
        STEP(a0, vld1q_s8(wp));                                                                 \
      }                                                                                         \
      vst1q_f32(y + c, vfmaq_f32(vld1q_f32(y + c), vcvtq_f32_s32(a0), sv));                     \
    }                                                                                           \
    if (c < cols) cc_dot_q8_columns(w + (size_t)c * 4, ld, Q, cols - c, xq, s, y + c);          \
  }                                                                                             \
  /* One example against n full strips (dot_q8_tiles_fn): the same float steps as n calls of    \
   * name##_one, with y in registers between them. */                                           \
  void name##_tiles(const int8_t* const* tiles, size_t offset, int Q, int n,                    \
                    const int8_t* const* xq, const float* s, float* y) {                        \
    float32x4_t yv[8];                                                                          \
    for (int t = 0; t < 8; ++t) yv[t] = vld1q_f32(y + 4 * t);                                   \
    for (int i = 0; i < n; ++i) {                                                               \
      int32x4_t a[8];                                                                           \
      name##_sums(tiles[i] + offset, Q, xq[i], a);                                              \
      const float32x4_t sv = vdupq_n_f32(s[i]);                                                 \
      for (int t = 0; t < 8; ++t) yv[t] = vfmaq_f32(yv[t], vcvtq_f32_s32(a[t]), sv);            \
    }                                                                                           \
    for (int t = 0; t < 8; ++t) vst1q_f32(y + 4 * t, yv[t]);                                    \
  }                                                                                             \
  CC_Q8_PIXELS(name, name##_one)
#define CC_Q8_NEON_STEP(acc, wv)                                      \
  do {                                                                \
    const int8x16_t w_ = (wv);                                        \
    const int16x8_t lo_ = vmull_s8(vget_low_s8(w_), vget_low_s8(xv)); \
    const int16x8_t hi_ = vmull_high_s8(w_, xv);                      \
    acc = vpadalq_s16(acc, vpaddq_s16(lo_, hi_));                     \
  } while (0)
CC_Q8_NEON_KERNEL(cc_dot_q8_neon, CC_Q8_NEON_STEP)
/* The sdot kernel: GCC compiles it for the dot-product extension alone
 * (target pragma) and it is picked at run time; Clang (the Android NDK) has no
 * such pragma, so there it exists when the whole build targets the extension
 * (-march=armv8.2-a+dotprod or a CPU that has it). */
#if defined(CC_HAVE_DOTPROD_CLONE)
#define CC_Q8_SDOT_STEP(acc, wv) acc = vdotq_s32(acc, (wv), xv)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
CC_Q8_NEON_KERNEL(cc_dot_q8_sdot, CC_Q8_SDOT_STEP)
#pragma GCC pop_options
#else
CC_Q8_NEON_KERNEL(cc_dot_q8_sdot, CC_Q8_SDOT_STEP)
#endif
#undef CC_Q8_SDOT_STEP
#endif
#undef CC_Q8_NEON_STEP
#undef CC_Q8_NEON_KERNEL
#endif
