/*
 * tower_check.h - the fixture comparison shared by the tower tests: a
 * tower's raw output against the reference features, then (L2-normalised in
 * place) against the reference embeddings; prints both differences and
 * checks them (embeddings 1e-4, features 1e-3).
 */
#ifndef MC_TOWER_CHECK_H
#define MC_TOWER_CHECK_H

#include "model/model.h"
#include "test.h"

/* out, feat, emb: [n, d]; label names the case in the printed line. */
static void check_tower_output(const char *label, float *out, const float *feat, const float *emb, int n, int d) {
    size_t nf = (size_t)n * d;
    float dfeat = max_abs_diff(out, feat, nf);
    mc_l2_normalize_rows(out, n, d);
    float demb = max_abs_diff(out, emb, nf);
    printf("%s features max|d| %.3g, embeddings max|d| %.3g\n", label, dfeat, demb);
    CHECK(demb <= 1e-4f, "%s: embeddings differ by %g", label, demb);
    CHECK(dfeat <= 1e-3f, "%s: features differ by %g", label, dfeat);
}

#endif /* MC_TOWER_CHECK_H */
