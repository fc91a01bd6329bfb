/*
 * test.h - the tiny test harness: CHECK counts passes and failures, every
 * test program ends with test_summary() printing "name: N passed, N failed".
 * Fixtures are read from $MC_FIXTURES or ../shared/fixtures (project root);
 * a missing fixture is a failure, never a skip.
 */
#ifndef MC_TEST_H
#define MC_TEST_H

#include <math.h>
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

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#endif
