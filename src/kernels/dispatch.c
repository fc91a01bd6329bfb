/*
 * kernels/dispatch.c - the kernel set in use (dispatch.h): the best the CPU
 * supports, or the one MC_KERNELS names, chosen once; and stand-ins for the
 * sets not built for this architecture.
 */
#include "kernels/dispatch.h"
#include "core/cpu.h"
#include "kernels/set_avx2.h"
#include "kernels/set_avx512.h"
#include "kernels/set_neon.h"
#include "kernels/set_portable.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static mc_kset g_sets[3];       /* scalar, avx2, avx512 (AArch64: scalar, neon) */
static int g_level;             /* best available */
static const mc_kset *g_cur;

static int level_of(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "scalar")) return 0;
#if defined(__aarch64__)
    if (!strcmp(name, "neon")) return 1;
#else
    if (!strcmp(name, "avx2")) return 1;
    if (!strcmp(name, "avx512")) return 2;
#endif
    return -1;
}

static void kernels_init(void) {
    mc_kset_portable(&g_sets[0]);
    g_level = mc_cpu_level();
#ifdef MC_NO_SIMD   /* builds without the per-file SIMD objects (fuzzing) */
    g_level = 0;
#elif defined(__aarch64__)
    if (g_level >= 1) mc_kset_neon(&g_sets[1]);
#else
    if (g_level >= 1) mc_kset_avx2(&g_sets[1]);
    if (g_level >= 2) mc_kset_avx512(&g_sets[2]);
#endif
    int want = level_of(getenv("MC_KERNELS"));
    int lvl = (want >= 0 && want <= g_level) ? want : g_level;
    g_cur = &g_sets[lvl];
}

const mc_kset *mc_kset_get(void) {
    pthread_once(&g_once, kernels_init);
    return g_cur;
}

int mc_kernels_force(const char *name) {
    pthread_once(&g_once, kernels_init);
    int lvl = name ? level_of(name) : g_level;
    if (lvl < 0 || lvl > g_level) return 0;
    g_cur = &g_sets[lvl];
    return 1;
}

void mc_kernels_force_set(const mc_kset *ks) {
    pthread_once(&g_once, kernels_init);
    g_cur = ks ? ks : &g_sets[g_level];
}

const char *mc_kernels_name(void) { return mc_kset_get()->name; }

/* Stand-ins for the sets this architecture does not build (set_avx2.c and
 * set_avx512.c are x86-only; set_neon.c is empty off AArch64). */
#if defined(__x86_64__) || defined(__i386__)
int mc_kset_neon(mc_kset *ks) { (void)ks; return 0; }
#else
#if !defined(__aarch64__)
int mc_kset_neon(mc_kset *ks) { (void)ks; return 0; }
#endif
int mc_kset_avx2(mc_kset *ks) { (void)ks; return 0; }
int mc_kset_avx512(mc_kset *ks) { (void)ks; return 0; }
#endif
