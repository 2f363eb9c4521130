/* Tiny persistent thread pool for the CondComp kernels (pthreads, C11 atomics).
 *
 * cc_parallel_run(n, fn, arg) calls fn(arg, t, n) on the calling thread (t = 0)
 * and on up to n-1 pool workers (distinct t in 1..n-1) that wake up while the
 * caller is still working; it returns when every call has returned. Workers
 * that are not scheduled in time simply do not take part, so `fn` must share
 * its work dynamically (e.g. an atomic counter over work items), not assume
 * that every t runs. Workers spin briefly after a
 * job (ops of one inference follow each other within microseconds) and then
 * sleep on a condition variable, so an idle pool costs no CPU. If the pool is
 * already running a job (another interpreter on another thread), the call runs
 * serially instead of waiting.
 */
#ifndef CONDCOMP_CC_PARALLEL_H_
#define CONDCOMP_CC_PARALLEL_H_

#ifdef __cplusplus
extern "C" {
#endif

#define CC_MAX_THREADS 64

typedef void (*cc_task_fn)(void* arg, int thread, int num_threads);

/* Returns the number of threads actually used (1 when run serially). */
int cc_parallel_run(int num_threads, cc_task_fn fn, void* arg);

#ifdef __cplusplus
}
#endif

#endif /* CONDCOMP_CC_PARALLEL_H_ */
