// A persistent pool of worker threads for splitting one kernel's work. The caller runs part 0 itself; workers
// spin briefly after each job (the next node usually follows within microseconds), then sleep on a condition
// variable so an idle process uses no CPU. Jobs never allocate.
#include "CKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_PAUSE() _mm_pause()
#else
#define CK_PAUSE() ((void)0)
#endif

// How long a worker keeps polling for the next job before it sleeps.
#define CK_SPIN_NANOSECONDS 200000ull

typedef struct {
    struct ck_pool *pool;
    size_t index;
    unsigned long first_generation;  // the generation before the first job this worker is to run
} ck_worker;

struct ck_pool {
    size_t threads;  // including the caller
    pthread_t *handles;
    ck_worker *workers;
    size_t started;
    _Atomic unsigned long generation;
    _Atomic size_t remaining;
    _Atomic int sleepers;
    _Atomic int stopping;
    _Atomic int busy;
    ck_task_fn fn;
    void *context;
    size_t parts;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

static unsigned long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static void *worker_main(void *argument) {
    ck_worker *self = argument;
    struct ck_pool *pool = self->pool;
    // Jobs may be published before this thread first runs: start from the generation it was created at.
    unsigned long seen = self->first_generation;
    for (;;) {
        // Poll, then sleep until the generation moves.
        unsigned long long deadline = 0;
        unsigned spins = 0;
        while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen &&
               !atomic_load_explicit(&pool->stopping, memory_order_acquire)) {
            // Pause first; past that, yield, so a pool with more threads than free cores still progresses.
            if (spins < 2048) CK_PAUSE();
            else sched_yield();
            if ((++spins & 255) == 0) {
                const unsigned long long t = now_ns();
                if (deadline == 0) deadline = t + CK_SPIN_NANOSECONDS;
                else if (t > deadline) {
                    pthread_mutex_lock(&pool->mutex);
                    atomic_fetch_add(&pool->sleepers, 1);
                    while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping)) {
                        pthread_cond_wait(&pool->wake, &pool->mutex);
                    }
                    atomic_fetch_sub(&pool->sleepers, 1);
                    pthread_mutex_unlock(&pool->mutex);
                    break;
                }
            }
        }
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire)) return NULL;
        // Every worker checks in for every job (even without a part), so the caller never rewrites the job
        // while a worker may still read it, and no worker can miss or repeat a generation.
        seen++;
        if (self->index < pool->parts) pool->fn(pool->context, self->index, pool->parts);
        atomic_fetch_sub_explicit(&pool->remaining, 1, memory_order_acq_rel);
    }
}

ck_pool *ck_pool_create(size_t threads) {
    if (threads < 1) threads = 1;
    struct ck_pool *pool = calloc(1, sizeof(struct ck_pool));
    if (!pool) return NULL;
    pool->threads = threads;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->remaining, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stopping, 0);
    atomic_init(&pool->busy, 0);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (threads > 1) {
        pool->handles = calloc(threads, sizeof(pthread_t));
        pool->workers = calloc(threads, sizeof(ck_worker));
        if (!pool->handles || !pool->workers) {
            ck_pool_destroy(pool);
            return NULL;
        }
    }
    return pool;
}

// Workers start with the first job that has parts for them, so a process whose work never splits (a small model,
// a one-off command) creates no threads. Called with `busy` held. A thread that cannot be created leaves the pool
// with the workers it has.
static void ck_pool_start(struct ck_pool *pool) {
    if (pool->started + 1 >= pool->threads) return;
    for (size_t i = pool->started + 1; i < pool->threads; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i;
        pool->workers[i].first_generation = atomic_load(&pool->generation);
        if (pthread_create(&pool->handles[i], NULL, worker_main, &pool->workers[i]) != 0) break;
        pool->started = i;
    }
    pool->threads = pool->started + 1;
}

void ck_pool_destroy(ck_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stopping, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (size_t i = 1; i <= pool->started; i++) pthread_join(pool->handles[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->handles);
    free(pool->workers);
    free(pool);
}

size_t ck_pool_threads(const ck_pool *pool) { return pool ? pool->threads : 1; }

void ck_pool_run(ck_pool *pool, size_t parts, ck_task_fn fn, void *context) {
    int idle = 0;
    // A job already running (another thread sharing the backend, or a part that splits again) means this one
    // runs its parts on the caller, one after another.
    if (!pool || parts <= 1 || pool->threads <= 1 || !atomic_compare_exchange_strong(&pool->busy, &idle, 1)) {
        for (size_t p = 0; p < (parts ? parts : 1); p++) fn(context, p, parts ? parts : 1);
        return;
    }
    ck_pool_start(pool);
    if (pool->threads <= 1) {
        for (size_t p = 0; p < parts; p++) fn(context, p, parts);
        atomic_store_explicit(&pool->busy, 0, memory_order_release);
        return;
    }
    if (parts > pool->threads) parts = pool->threads;
    pool->fn = fn;
    pool->context = context;
    pool->parts = parts;
    atomic_store_explicit(&pool->remaining, pool->threads - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->generation, 1);  // sequentially consistent: publishes the job, then reads sleepers
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    fn(context, 0, parts);
    for (unsigned spins = 0; atomic_load_explicit(&pool->remaining, memory_order_acquire) > 0; spins++) {
        if (spins < 2048) CK_PAUSE();
        else sched_yield();
    }
    atomic_store_explicit(&pool->busy, 0, memory_order_release);
}
