/* ISA dispatch of the CondComp kernels: which clone or kernel runs on this
 * CPU, chosen at run time (CPU features; $CONDCOMP_KERNEL_ISA forces an
 * older one), and the entry points of condcomp_kernels.h that call it.
 *
 * $CONDCOMP_KERNEL_ISA, so the tests can run every kernel path on one
 * machine (CI does):
 *   baseline        the baseline clones, the portable int8 kernel (x86-64) or
 *                   plain NEON (aarch64), on any CPU
 *   avx2            the AVX2 clones and int8 kernel on an AVX-512 / VNNI CPU
 *   avx512vnni-ymm  the AVX512-VNNI int8 kernel on ymm where the zmm one
 *                   would run
 */
#include "cc_kernels_internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(CC_HAVE_DOTPROD_CLONE)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

/* --------------------------------------------------------- CPU features */

#if CC_X86_MULTIVERSION
/* $CONDCOMP_KERNEL_ISA=baseline forces the baseline clone on any CPU. */
static int have_avx2_fma(void) {
  static int cached = -1; /* benign race: every thread computes the same value */
  if (cached < 0) {
    const char* forced = getenv("CONDCOMP_KERNEL_ISA");
    __builtin_cpu_init();
    cached = !(forced && strcmp(forced, "baseline") == 0) && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
  }
  return cached;
}

/* ...=avx2 forces the AVX2 clone on an AVX-512 CPU (and baseline, the baseline). */
static int have_avx512(void) {
  static int cached = -1;
  if (cached < 0) {
    const char* forced = getenv("CONDCOMP_KERNEL_ISA");
    __builtin_cpu_init();
    cached = have_avx2_fma() && !(forced && strcmp(forced, "avx2") == 0) &&
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  }
  return cached;
}
#endif

/* ----------------------------------------------------- int8 activations */

quantize_fn cc_select_quantize(void) {
#if CC_X86_MULTIVERSION
  if (have_avx512()) return cc_quantize_avx512;
  if (have_avx2_fma()) return cc_quantize_avx2;
#elif defined(__AVX512F__) && defined(__AVX512VL__)
  return cc_quantize_avx512;
#elif defined(__AVX2__) && defined(__FMA__)
  return cc_quantize_avx2;
#elif defined(__aarch64__)
  return cc_quantize_neon;
#endif
  return cc_quantize_default;
}

void cc_finish_q8_outputs(float* y, size_t rows, size_t stride, int bs, const float* scale,
                          const float* bias, int activation) {
#if CC_X86_MULTIVERSION
  if (have_avx512()) {
    cc_finish_q8_avx512(y, rows, stride, bs, scale, bias, activation);
    return;
  }
  if (have_avx2_fma()) {
    cc_finish_q8_avx2(y, rows, stride, bs, scale, bias, activation);
    return;
  }
#endif
  cc_finish_q8_default(y, rows, stride, bs, scale, bias, activation);
}

/* --------------------------------------------------------- int8 kernels */

/* The int8 kernels for this CPU, chosen once; $CONDCOMP_KERNEL_ISA=baseline
 * forces the portable one (x86-64) or plain NEON (aarch64). */
static cc_q8_kernels g_q8;
const cc_q8_kernels* cc_select_q8(void) {
  static int chosen = 0; /* benign race: every thread picks the same */
  if (__atomic_load_n(&chosen, __ATOMIC_ACQUIRE)) return &g_q8;
  const char* forced = getenv("CONDCOMP_KERNEL_ISA");
  const int baseline = forced && strcmp(forced, "baseline") == 0;
  (void)baseline; /* unused where there is nothing to choose */
  cc_q8_kernels k = {cc_dot_q8_generic, NULL, NULL, NULL, "portable C"};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!baseline && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    k.dot = cc_dot_q8_avx2;
    k.tiles = cc_dot_q8_avx2_tiles;
    k.isa = "avx2 vpmaddubsw";
#if defined(CC_HAVE_VNNI_CLONE)
    /* ...=avx2 keeps the AVX2 kernel on a VNNI CPU (CI's forced-AVX2 step). */
    const int avx2_forced = forced && strcmp(forced, "avx2") == 0;
#if defined(CC_Q8_VNNI_EMULATED)
    if (!avx2_forced) {
      k.dot = cc_dot_q8_avx512vnni;
      k.tiles = cc_dot_q8_avx512vnni_tiles;
      k.isa = "avx512-vnni vpdpbusd (SIMDe-emulated test build)";
    }
#else
    const int ymm_forced = forced && strcmp(forced, "avx512vnni-ymm") == 0;
    if (!avx2_forced && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni")) {
      k.dot = cc_dot_q8_avx512vnni;
      k.tiles = cc_dot_q8_avx512vnni_tiles;
      k.isa = "avx512-vnni vpdpbusd";
#if defined(CC_HAVE_VNNI_ZMM_CLONE)
      if (!ymm_forced && __builtin_cpu_supports("avx512bw")) {
        k.dot = cc_dot_q8_avx512vnni_zmm;
        k.group = cc_dot_q8_avx512vnni_zmm_group;
        k.tiles = cc_dot_q8_avx512vnni_zmm_tiles;
        k.conv = cc_dot_q8_avx512vnni_zmm_conv;
        k.isa = "avx512-vnni vpdpbusd zmm";
      }
#endif
    } else if (!avx2_forced && __builtin_cpu_supports("avxvnni")) {
      k.dot = cc_dot_q8_avxvnni;
      k.tiles = cc_dot_q8_avxvnni_tiles;
      k.isa = "avx-vnni vpdpbusd";
    }
#endif
#endif
  }
#elif defined(__aarch64__)
  k.dot = cc_dot_q8_neon;
  k.tiles = cc_dot_q8_neon_tiles;
  k.isa = "neon smull/sadalp";
#if defined(CC_HAVE_DOTPROD_CLONE)
  if (!baseline && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) {
    k.dot = cc_dot_q8_sdot;
    k.tiles = cc_dot_q8_sdot_tiles;
    k.isa = "neon sdot";
  }
#endif
#endif
  g_q8 = k;
  __atomic_store_n(&chosen, 1, __ATOMIC_RELEASE); /* after g_q8 */
  return &g_q8;
}

const char* cc_kernel_isa_q8(void) { return cc_select_q8()->isa; }

/* ----------------------------------------------------- the gated layers */

void cc_gated_dense_gate(const cc_gated_dense* p, int e_begin, int e_end, float* logits) {
#if CC_X86_MULTIVERSION
  if (have_avx512()) {
    cc_dense_gate_avx512(p, e_begin, e_end, logits);
    return;
  }
  if (have_avx2_fma()) {
    cc_dense_gate_avx2(p, e_begin, e_end, logits);
    return;
  }
#endif
  cc_dense_gate_default(p, e_begin, e_end, logits);
}

void cc_gated_conv2d_gate(const cc_gated_conv2d* p, int e_begin, int e_end, float* scratch) {
#if CC_X86_MULTIVERSION
  if (have_avx2_fma()) {
    cc_conv_gate_avx2(p, e_begin, e_end, scratch);
    return;
  }
#endif
  cc_conv_gate_default(p, e_begin, e_end, scratch);
}

uint64_t cc_gated_dense_block(const cc_gated_dense* p, int j, int* examples) {
  if (p->kernel_q != NULL) return cc_dense_block_q8(p, j, examples);
#if CC_X86_MULTIVERSION
  if (have_avx512()) return cc_dense_block_f32_avx512(p, j, examples);
  if (have_avx2_fma()) return cc_dense_block_f32_avx2(p, j, examples);
#endif
  return cc_dense_block_f32_default(p, j, examples);
}

uint64_t cc_dense_head_apply(const cc_dense_head* p) {
#if CC_X86_MULTIVERSION
  if (have_avx2_fma()) return cc_dense_head_avx2(p);
#endif
  return cc_dense_head_default(p);
}

uint64_t cc_gated_conv2d_block(const cc_gated_conv2d* p, int j) {
  if (p->kernel_q != NULL) return cc_conv_block_q8(p, j);
#if CC_X86_MULTIVERSION
  if (have_avx512()) return cc_conv_block_f32_avx512(p, j);
  if (have_avx2_fma()) return cc_conv_block_f32_avx2(p, j);
#endif
  return cc_conv_block_f32_default(p, j);
}

const char* cc_kernel_isa(void) {
#if CC_X86_MULTIVERSION
  if (have_avx512()) return "x86-64 avx512 clone (dense, conv, dense gate), avx2+fma (conv gate)";
  return have_avx2_fma() ? "x86-64 avx2+fma clone" : "x86-64 baseline clone";
#elif defined(__AVX2__) && defined(__FMA__)
  return "x86-64 avx2+fma (compile flags)";
#elif defined(__aarch64__)
  return "aarch64 neon";
#else
  return "generic";
#endif
}
