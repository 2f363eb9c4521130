/* See cc_parallel.h. */
#include "cc_parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define CC_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CC_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CC_CPU_RELAX() ((void)0)
#endif

/* How long an idle worker spins before it sleeps: long enough to catch the
 * next op of the same inference, short enough not to steal a core from
 * whatever runs between inferences. */
#ifndef CC_SPIN_NS
#define CC_SPIN_NS 50000
#endif
#define CC_SPIN_ITERATIONS 2000 /* caller side, before it yields */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One mailbox per worker: a job is posted to exactly the workers that take
 * part in it, so a worker never runs a job it was not given. */
typedef struct {
  atomic_uint generation; /* bumped when a job is posted to this worker */
  cc_task_fn fn;
  void* arg;
  int num_threads;
  /* job sequence number the post belongs to: stored (release) after fn, arg
   * and num_threads, loaded (acquire) by the worker before it may join, so a
   * worker that sees a job's seq also sees that job's fn and arg (a worker
   * waking late can read it while the next job is being posted) */
  atomic_uint seq;
  char pad[64];
} cc_slot;

/* Job state: (seq << 32) | CLOSED | number of workers running the job. A
 * worker joins only while the job with its seq is open; the caller closes the
 * job when it has run out of work itself and then waits only for the workers
 * that joined, never for ones that have not been scheduled yet. */
#define CC_CLOSED (1ull << 31)
#define CC_RUNNING_MASK (CC_CLOSED - 1)

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  atomic_ullong state; /* see CC_CLOSED */
  uint32_t seq;
  atomic_int sleepers;
  atomic_flag busy; /* one job at a time */
  int started;      /* worker threads created so far */
  cc_slot slots[CC_MAX_THREADS];
} cc_pool;

static cc_pool g_pool = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, ATOMIC_FLAG_INIT, 0, {{0}}};
static pthread_mutex_t g_start_lock = PTHREAD_MUTEX_INITIALIZER;

static void* worker_main(void* raw) {
  const int index = (int)(size_t)raw; /* 1-based: the caller is thread 0 */
  cc_pool* pool = &g_pool;
  cc_slot* slot = &pool->slots[index];
  unsigned seen = 0; /* slot generations start at 0 and only the caller bumps them */
  for (;;) {
    unsigned gen;
    int spins = 0;
    uint64_t spin_start = 0;
    while ((gen = atomic_load(&slot->generation)) == seen) {
      if ((++spins & 63) != 0) {
        CC_CPU_RELAX();
        continue;
      }
      if (spin_start == 0) spin_start = now_ns();
      if (now_ns() - spin_start < CC_SPIN_NS) continue;
      pthread_mutex_lock(&pool->lock);
      atomic_fetch_add(&pool->sleepers, 1);
      while (atomic_load(&slot->generation) == seen) {
        pthread_cond_wait(&pool->wake, &pool->lock);
      }
      atomic_fetch_sub(&pool->sleepers, 1);
      pthread_mutex_unlock(&pool->lock);
      spins = 0;
      spin_start = 0;
    }
    seen = gen;
    const unsigned long long want =
        (unsigned long long)atomic_load_explicit(&slot->seq, memory_order_acquire) << 32;
    unsigned long long st = atomic_load(&pool->state);
    int joined = 0;
    while ((st & ~CC_RUNNING_MASK) == want) { /* same job and not closed */
      if (atomic_compare_exchange_weak(&pool->state, &st, st + 1)) {
        joined = 1;
        break;
      }
    }
    if (joined) {
      slot->fn(slot->arg, index, slot->num_threads);
      atomic_fetch_sub(&pool->state, 1);
    }
  }
  return NULL;
}

static int ensure_workers(int wanted) {
  if (wanted > CC_MAX_THREADS - 1) wanted = CC_MAX_THREADS - 1;
  pthread_mutex_lock(&g_start_lock);
  while (g_pool.started < wanted) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, worker_main, (void*)(size_t)(g_pool.started + 1));
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    g_pool.started++;
  }
  int have = g_pool.started;
  pthread_mutex_unlock(&g_start_lock);
  return have;
}

int cc_parallel_run(int num_threads, cc_task_fn fn, void* arg) {
  if (num_threads > CC_MAX_THREADS) num_threads = CC_MAX_THREADS;
  if (num_threads <= 1 || atomic_flag_test_and_set(&g_pool.busy)) {
    fn(arg, 0, 1);
    return 1;
  }
  int workers = ensure_workers(num_threads - 1);
  if (workers < num_threads - 1) num_threads = workers + 1;
  if (num_threads <= 1) {
    atomic_flag_clear(&g_pool.busy);
    fn(arg, 0, 1);
    return 1;
  }
  cc_pool* pool = &g_pool;
  const uint32_t seq = ++pool->seq;
  atomic_store(&pool->state, (unsigned long long)seq << 32);
  for (int i = 1; i < num_threads; ++i) {
    cc_slot* slot = &pool->slots[i];
    slot->fn = fn;
    slot->arg = arg;
    slot->num_threads = num_threads;
    atomic_store_explicit(&slot->seq, seq, memory_order_release);
    atomic_fetch_add(&slot->generation, 1); /* seq_cst: ordered before the sleepers load */
  }
  if (atomic_load(&pool->sleepers) > 0) {
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
  }
  fn(arg, 0, num_threads);
  atomic_fetch_or(&pool->state, CC_CLOSED);
  int spins = 0;
  while (atomic_load(&pool->state) & CC_RUNNING_MASK) {
    if (++spins < CC_SPIN_ITERATIONS) {
      CC_CPU_RELAX();
    } else {
      sched_yield();
    }
  }
  atomic_flag_clear(&g_pool.busy);
  return num_threads;
}
