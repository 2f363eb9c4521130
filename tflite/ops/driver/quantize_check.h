// `condcomp_driver quantize N`: the int8 activation quantization
// (cc_quantize.c) against the double-precision rule on values placed at and
// next to the half-integers of x * k, where a float32 shortcut would round
// differently, for every quantize_fn variant this CPU runs.
#pragma once

namespace ccdrv {

// N random cases (--seed); prints "N passed, N failed"; 0 when all match.
int run_quantize_check(long n);

}  // namespace ccdrv
