/* Timing helpers shared by the stand-alone kernel benchmarks (bench_*.c). */
#ifndef CONDCOMP_BENCH_UTIL_H_
#define CONDCOMP_BENCH_UTIL_H_

#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* qsort comparator of doubles (for medians). */
static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

#endif /* CONDCOMP_BENCH_UTIL_H_ */
