/*
 * kernels/threads.c - the kernels' thread counts (process-wide and per
 * calling thread), the thread count for one call (by its work), and the
 * thread-local scratch (grown on demand, freed when its thread exits).
 */
#include "kernels/threads.h"

#include <pthread.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static int g_threads;                  /* read and written atomically: any thread may set it */
static __thread int tl_threads = -1;   /* per calling thread; -1: use g_threads */

void mc_kernels_set_threads(int n) { __atomic_store_n(&g_threads, n > 0 ? n : 0, __ATOMIC_RELAXED); }
int mc_kernels_get_threads(void) {
    return tl_threads >= 0 ? tl_threads : __atomic_load_n(&g_threads, __ATOMIC_RELAXED);
}
int mc_kernels_set_local_threads(int n) {
    int prev = tl_threads;
    tl_threads = n < 0 ? -1 : n;
    return prev;
}

static __thread float *tl_buf[MC_SCRATCH_N];
static __thread size_t tl_cap[MC_SCRATCH_N];
static size_t g_scratch_limit = (size_t)-1;   /* floats; tests lower it */

void mc_scratch_set_limit(size_t floats) { g_scratch_limit = floats; }

/* A thread that ever allocates scratch gets a key value, so that its buffers
 * are freed when it exits (application threads with a context each, and the
 * OpenMP teams they start, come and go). */
static pthread_key_t g_scratch_key;
static int g_scratch_key_ok;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_release(void *unused) {
    (void)unused;
    for (int i = 0; i < MC_SCRATCH_N; i++) {
        free(tl_buf[i]);
        tl_buf[i] = NULL;
        tl_cap[i] = 0;
    }
}

static void scratch_key_make(void) { g_scratch_key_ok = pthread_key_create(&g_scratch_key, scratch_release) == 0; }

float *mc_scratch(int slot, size_t floats) {
    if (floats > g_scratch_limit) return NULL;
    if (floats > tl_cap[slot]) {
        pthread_once(&g_scratch_once, scratch_key_make);
        if (g_scratch_key_ok && !pthread_getspecific(g_scratch_key)) pthread_setspecific(g_scratch_key, tl_buf);
        if (floats > ((size_t)-1) / sizeof(float) / 2) return NULL;
        size_t cap = floats + floats / 4 + 64;
        cap = (cap + 15) & ~(size_t)15;
        float *p = aligned_alloc(64, cap * sizeof(float));
        if (!p) return NULL;
        free(tl_buf[slot]);
        tl_buf[slot] = p;
        tl_cap[slot] = cap;
    }
    return tl_buf[slot];
}

int mc_threads_for(double flops) {
#ifdef _OPENMP
    if (omp_in_parallel()) return 1;
    if (flops < 4e6) return 1;
    int nt = mc_kernels_get_threads();
    if (nt <= 0) nt = omp_get_max_threads();
    /* at least ~2 Mflop per thread: fork/join costs microseconds */
    int cap = (int)(flops / 2e6);
    if (cap < 1) cap = 1;
    return nt < cap ? nt : cap;
#else
    (void)flops;
    return 1;
#endif
}

int mc_kernels_threads_avail(void) { return mc_threads_for(1e15); }
