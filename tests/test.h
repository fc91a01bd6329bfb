/*
 * test.h - the tiny test harness: CHECK counts passes and failures, every
 * test program ends with test_summary() printing "name: N passed, N failed".
 * Fixtures are read from $MC_FIXTURES or ../shared/fixtures (project root);
 * a missing fixture is a failure, never a skip.
 */
#ifndef MC_TEST_H
#define MC_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            t_pass++;                                                           \
        } else {                                                                \
            t_fail++;                                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static inline const char *fixtures_dir(void) {
    const char *e = getenv("MC_FIXTURES");
    return (e && *e) ? e : "../shared/fixtures";
}

/* Builds "<fixtures>/<rel>" into a static rotating buffer. */
static inline const char *fixture(const char *rel) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", fixtures_dir(), rel);
    return b;
}

static inline float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > m || d != d) m = (d != d) ? INFINITY : d;
    }
    return m;
}

/* Seeded pseudo-random floats for kernel tests (an LCG: the same sequence on
 * every machine).  test_seed() sets the state; test_frand() is uniform in [-1, 1). */
static uint32_t t_rng = 12345;
static inline void test_seed(uint32_t seed) { t_rng = seed; }
static inline float test_frand(void) {
    t_rng = t_rng * 1664525u + 1013904223u;
    return (float)((t_rng >> 8) * (1.0 / 8388608.0)) - 1.0f;
}
/* malloc'd n floats uniform in [-scale, scale). */
static inline float *test_rand_buf(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = test_frand() * scale;
    return p;
}
/* max |got - ref| relative to max(1, max |ref|); infinity on NaN. */
static inline double test_rel_err(const float *got, const float *ref, size_t n) {
    double md = 0, mr = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#endif
