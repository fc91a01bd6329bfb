/*
 * search/scan.c - exact top-k: scores from mc_linear (the kernels' gemv on
 * the unpacked embeddings, threaded), a min-heap of the k best, sorted.
 */
#include "search/scan.h"
#include "kernels/kernels.h"

#include <stdlib.h>

/* a ranks before b: higher score, then lower id */
static int better(mc_search_hit a, mc_search_hit b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
}

/* heap[0] is the worst of the kept hits */
static void sift_down(mc_search_hit *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(h[w], h[l])) w = l;
        if (r < n && better(h[w], h[r])) w = r;
        if (w == i) return;
        mc_search_hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int cmp_hits(const void *pa, const void *pb) {
    mc_search_hit a = *(const mc_search_hit *)pa, b = *(const mc_search_hit *)pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static int select_topk(const float *scores, const int64_t *ids, int64_t n, int k, mc_search_hit *hits) {
    if (k <= 0 || n <= 0) return 0;
    int m = n < k ? (int)n : k;
    for (int i = 0; i < m; i++) hits[i] = (mc_search_hit){ids[i], scores[i]};
    for (int i = m / 2 - 1; i >= 0; i--) sift_down(hits, m, i);
    for (int64_t i = m; i < n; i++) {
        mc_search_hit c = {ids[i], scores[i]};
        if (better(c, hits[0])) {
            hits[0] = c;
            sift_down(hits, m, 0);
        }
    }
    qsort(hits, (size_t)m, sizeof *hits, cmp_hits);
    return m;
}

int mc_scan_topk(const float *emb, const int64_t *ids, int64_t n, int dim, const float *q, int k,
                 float *scores, mc_search_hit *hits) {
    if (n <= 0 || k <= 0) return 0;
    mc_linear(q, emb, NULL, 1, dim, (int)n, scores, MC_ACT_NONE);
    return select_topk(scores, ids, n, k, hits);
}

int mc_scan_topk_ref(const float *emb, const int64_t *ids, int64_t n, int dim, const float *q, int k,
                     float *scores, mc_search_hit *hits) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)emb[i * dim + j] * q[j];
        scores[i] = (float)s;
    }
    return select_topk(scores, ids, n, k, hits);
}
