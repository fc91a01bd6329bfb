/*
 * model/generate.c - caption generation (see generate.h) and the public
 * captioner API.
 *
 * The reference loop (open_clip 2.31 coca_model.py generate, with Hugging
 * Face's logits processors): from [SOT], each step takes the last position's
 * logits of the rows not yet finished (last token EOT or pad), applies
 * MinLengthLogitsProcessor (EOT at -inf while the row is shorter than
 * min_seq_len) and RepetitionPenaltyLogitsProcessor (each token already in the
 * row: logit / penalty when positive, * penalty otherwise), then the warper
 * (TopK: keep logits >= the k-th largest; TopP: drop the ascending-sorted
 * tokens whose cumulative probability stays <= 1 - top_p, keeping the last),
 * and samples from softmax(logits / temperature); the step that would make
 * the row seq_len long emits EOT instead.  Finished rows take pad tokens; the
 * loop ends when all rows are finished (unless fixed_output_length) or the
 * rows are seq_len long.  Beam search: _generate_beamsearch with
 * BeamSearchScorer (length penalty 1, early_stopping False): the scores are
 * running sums of the processed logits (not log-probabilities).
 */
#include "model/generate.h"

#include "kernels/threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NEG_INF (-INFINITY)

mc_generate_params mc_generate_default_params(void) {
    mc_generate_params p;
    memset(&p, 0, sizeof p);
    p.type = MC_GEN_BEAM_SEARCH;
    p.seq_len = 30;
    p.min_seq_len = 5;
    p.fixed_output_length = 0;
    p.temperature = 1.0f;
    p.top_p = 0.1f;
    p.top_k = 1;
    p.repetition_penalty = 1.0f;
    p.num_beams = 6;
    p.num_beam_groups = 3;
    p.seed = 0;
    p.threads = 0;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Random numbers: splitmix64, one stream per image                          */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0); }

/* ------------------------------------------------------------------------ */
/* Logits processors and warpers                                             */
/* ------------------------------------------------------------------------ */

/* orig: len floats of scratch. */
static void process_logits(float *l, const int32_t *row, int len, const mc_generate_params *p, float *orig) {
    if (len < p->min_seq_len) l[MC_TOKEN_EOT] = NEG_INF;
    float r = p->repetition_penalty;
    if (r != 1.0f) {
        /* gather then scatter: a repeated token is penalised once */
        for (int j = 0; j < len; j++) orig[j] = l[row[j]];
        for (int j = 0; j < len; j++) l[row[j]] = orig[j] < 0 ? orig[j] * r : orig[j] / r;
    }
}

static int argmax(const float *l, int V) {
    int best = 0;
    for (int k = 1; k < V; k++)
        if (l[k] > l[best]) best = k;
    return best;
}

/* TopKLogitsWarper: logits below the k-th largest to -inf. */
static void warp_top_k(float *l, int V, int k, float *tmp) {
    if (k >= V) return;
    memcpy(tmp, l, sizeof(float) * V);
    /* the k-th largest by partial selection */
    int lo = 0, hi = V - 1, want = k - 1;
    while (lo < hi) {
        float piv = tmp[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > piv) i++;
            while (tmp[j] < piv) j--;
            if (i <= j) { float t = tmp[i]; tmp[i] = tmp[j]; tmp[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    float kth = tmp[want];
    for (int i = 0; i < V; i++)
        if (l[i] < kth) l[i] = NEG_INF;
}

typedef struct sv {
    float v;
    int i;
} sv;

static int cmp_sv_asc(const void *a, const void *b) {
    const sv *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* TopPLogitsWarper (min_tokens_to_keep 1). */
static void warp_top_p(float *l, int V, float top_p, sv *s) {
    for (int i = 0; i < V; i++) { s[i].v = l[i]; s[i].i = i; }
    qsort(s, (size_t)V, sizeof *s, cmp_sv_asc);
    float mx = s[V - 1].v;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += s[i].v == NEG_INF ? 0.0 : exp((double)s[i].v - mx);
    double cum = 0, lim = 1.0 - (double)top_p;
    for (int i = 0; i < V - 1; i++) {
        cum += (s[i].v == NEG_INF ? 0.0 : exp((double)s[i].v - mx)) / sum;
        if ((float)cum <= (float)lim) l[s[i].i] = NEG_INF;
        else break;
    }
}

/* softmax(l / temperature) and one draw. */
static int sample(const float *l, int V, float temperature, uint64_t *rng) {
    float mx = NEG_INF;
    for (int i = 0; i < V; i++)
        if (l[i] > mx) mx = l[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += l[i] == NEG_INF ? 0.0 : exp(((double)l[i] - mx) / temperature);
    double u = uniform01(rng) * sum, c = 0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (l[i] == NEG_INF) continue;
        c += exp(((double)l[i] - mx) / temperature);
        last = i;
        if (u < c) return i;
    }
    return last;
}

/* ------------------------------------------------------------------------ */
/* Sampling and greedy                                                       */
/* ------------------------------------------------------------------------ */

typedef struct gen_ctx {
    const mc_coca *m;
    const mc_generate_params *p;
    int cached;
    int V, pad;
    mc_coca_cache *c;
    int32_t *ids;           /* [rows, seq_len] */
    int *seqs;
    int32_t *in;            /* step input: [rows] or [rows, len] */
    float *logits;          /* [rows, V] */
    mc_error *err;
} gen_ctx;

/* Logits of the last position of rows seqs[0..ns) whose ids hold len tokens. */
static mc_status step_logits(gen_ctx *g, int ns, int len) {
    int L = g->p->seq_len;
    if (g->cached) {
        for (int i = 0; i < ns; i++) g->in[i] = g->ids[(size_t)g->seqs[i] * L + len - 1];
        return mc_coca_decode(g->m, g->c, g->seqs, ns, len - 1, 1, g->in, 0, g->logits, g->err);
    }
    for (int i = 0; i < ns; i++) memcpy(g->in + (size_t)i * len, g->ids + (size_t)g->seqs[i] * L, sizeof(int32_t) * len);
    return mc_coca_decode(g->m, g->c, g->seqs, ns, 0, len, g->in, 0, g->logits, g->err);
}

static int finished(const gen_ctx *g, int r, int len) {
    int32_t t = g->ids[(size_t)r * g->p->seq_len + len - 1];
    return t == MC_TOKEN_EOT || t == g->pad;
}

static mc_status run_sampling(gen_ctx *g, int n, int *lens) {
    const mc_generate_params *p = g->p;
    int L = p->seq_len, V = g->V;
    float *tmp = mc_malloc_array((size_t)V, sizeof(sv));
    uint64_t *rng = mc_malloc_array((size_t)n, sizeof(uint64_t));
    if (!tmp || !rng) { free(tmp); free(rng); return mc_fail(g->err, MC_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < n; i++) {
        uint64_t s = p->seed + (uint64_t)i;   /* image i: the stream of seed + i */
        rng[i] = splitmix(&s) ^ splitmix(&s);
        g->ids[(size_t)i * L] = MC_TOKEN_SOT;
    }
    mc_status st = MC_OK;
    int len = 1;
    for (;;) {
        int ns = 0;
        for (int i = 0; i < n; i++)
            if (!finished(g, i, len)) g->seqs[ns++] = i;
        if (ns == 0 && !p->fixed_output_length) break;
        if (ns > 0 && (st = step_logits(g, ns, len)) != MC_OK) break;
        for (int i = 0; i < n; i++) g->ids[(size_t)i * L + len] = g->pad;
        for (int a = 0; a < ns; a++) {
            int r = g->seqs[a];
            float *l = g->logits + (size_t)a * V;
            const int32_t *row = g->ids + (size_t)r * L;
            int32_t t;
            process_logits(l, row, len, p, tmp);
            if (len + 1 == L) {
                t = MC_TOKEN_EOT;
            } else if (p->type == MC_GEN_GREEDY) {
                t = argmax(l, V);
            } else {
                if (p->type == MC_GEN_TOP_K) warp_top_k(l, V, p->top_k, tmp);
                else warp_top_p(l, V, p->top_p, (sv *)tmp);
                t = sample(l, V, p->temperature, &rng[r]);
            }
            g->ids[(size_t)r * L + len] = t;
        }
        len++;
        if (len >= L) break;
    }
    for (int i = 0; i < n; i++) {
        int k = 1;
        while (k < len && !(g->ids[(size_t)i * L + k - 1] == MC_TOKEN_EOT || (k > 1 && g->ids[(size_t)i * L + k - 1] == g->pad)))
            k++;
        lens[i] = k;
    }
    free(tmp);
    free(rng);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Beam search                                                               */
/* ------------------------------------------------------------------------ */

typedef struct hyp {
    float score;
    int len;
    int32_t *tok;
} hyp;

typedef struct hyps {
    hyp *h;              /* up to gs + 1 */
    int n;
    float worst;
    int done;
} hyps;

static void hyps_add(hyps *H, int gs, const int32_t *tok, int len, float sum, int gen_len, int L) {
    float score = sum / (float)gen_len;
    if (!(H->n < gs || score > H->worst)) return;
    hyp *e = &H->h[H->n++];
    e->score = score;
    e->len = len;
    memcpy(e->tok, tok, sizeof(int32_t) * len);
    (void)L;
    if (H->n > gs) {
        /* drop the lowest (ties: the earliest); worst = the next lowest */
        int lo = 0;
        for (int i = 1; i < H->n; i++)
            if (H->h[i].score < H->h[lo].score) lo = i;
        int32_t *buf = H->h[lo].tok;
        memmove(&H->h[lo], &H->h[lo + 1], sizeof(hyp) * (size_t)(H->n - lo - 1));
        H->n--;
        H->h[H->n].tok = buf;
        float w = INFINITY;
        for (int i = 0; i < H->n; i++)
            if (H->h[i].score < w) w = H->h[i].score;
        H->worst = w;
    } else if (score < H->worst) {
        H->worst = score;
    }
}

static int hyps_is_done(const hyps *H, int gs, float best_sum, int cur_len) {
    if (H->n < gs) return 0;
    return H->worst >= best_sum / (float)cur_len;
}

typedef struct cand {
    float s;
    int idx;
} cand;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s > y->s) return -1;
    if (x->s < y->s) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static mc_status run_beams(gen_ctx *g, int n, int32_t *out, int cap, int *lens) {
    const mc_generate_params *p = g->p;
    int B = p->num_beams, G = p->num_beam_groups, gs = B / G, L = p->seq_len, V = g->V, R = n * B;
    float *scores = mc_malloc_array((size_t)R, sizeof(float));
    float *nscores = mc_malloc_array((size_t)R, sizeof(float));
    int32_t *ntok = mc_malloc_array((size_t)R, sizeof(int32_t));
    int *src = mc_malloc_array((size_t)R, sizeof(int));
    int32_t *ids2 = mc_malloc_array((size_t)R * L, sizeof(int32_t));
    float *pen = mc_malloc_array((size_t)L, sizeof(float));
    cand *cd = mc_malloc_array((size_t)gs * V, sizeof(cand));
    hyps *H = mc_calloc_array((size_t)n * G, sizeof(hyps));
    int32_t *hbuf = mc_malloc_array((size_t)n * G * (gs + 1) * L, sizeof(int32_t));
    hyp *hmem = mc_calloc_array((size_t)n * G * (gs + 1), sizeof(hyp));
    mc_status st = MC_OK;
    if (!scores || !nscores || !ntok || !src || !ids2 || !pen || !cd || !H || !hbuf || !hmem) {
        st = mc_fail(g->err, MC_ERR_NOMEM, "beam search: out of memory for %d beams", R);
        goto done;
    }
    for (int k = 0; k < n * G; k++) {
        H[k].h = hmem + (size_t)k * (gs + 1);
        H[k].worst = 1e9f;
        for (int j = 0; j <= gs; j++) H[k].h[j].tok = hbuf + ((size_t)k * (gs + 1) + j) * L;
    }
    for (int r = 0; r < R; r++) {
        g->ids[(size_t)r * L] = MC_TOKEN_SOT;
        scores[r] = (r % B) % gs == 0 ? 0.0f : -1e9f;
        mc_coca_cache_attach(g->c, r, r / B);
    }
    int len = 1;
    for (;;) {
        for (int r = 0; r < R; r++) g->seqs[r] = r;
        if ((st = step_logits(g, R, len)) != MC_OK) goto done;
        for (int gr = 0; gr < G; gr++) {
            for (int b = 0; b < n; b++) {
                hyps *hy = &H[b * G + gr];
                int base = b * B + gr * gs;
                if (hy->done) {
                    /* the reference pads a finished group: token pad, score 0, from group row 0 of batch 0 */
                    for (int j = 0; j < gs; j++) {
                        nscores[base + j] = 0;
                        ntok[base + j] = g->pad;
                        src[base + j] = gr * gs;
                    }
                    continue;
                }
                for (int j = 0; j < gs; j++) {
                    int r = base + j;
                    float *l = g->logits + (size_t)r * V;
                    process_logits(l, g->ids + (size_t)r * L, len, p, pen);
                    for (int v = 0; v < V; v++) {
                        cd[(size_t)j * V + v].s = l[v] + scores[r];
                        cd[(size_t)j * V + v].idx = j * V + v;
                    }
                }
                /* the 2 gs best, descending */
                int K = 2 * gs, tot = gs * V;
                for (int a = 0; a < K && a < tot; a++) {
                    int best = a;
                    for (int z = a + 1; z < tot; z++)
                        if (cmp_cand(&cd[z], &cd[best]) < 0) best = z;
                    cand t = cd[a]; cd[a] = cd[best]; cd[best] = t;
                }
                int bi = 0;
                for (int rank = 0; rank < K && bi < gs; rank++) {
                    int ni = cd[rank].idx / V, tk = cd[rank].idx % V;
                    int from = base + ni;
                    if (tk == MC_TOKEN_EOT) {
                        if (rank >= gs) continue;
                        hyps_add(hy, gs, g->ids + (size_t)from * L, len, cd[rank].s, len + 1, L);
                    } else {
                        nscores[base + bi] = cd[rank].s;
                        ntok[base + bi] = tk;
                        src[base + bi] = from;
                        bi++;
                    }
                }
                hy->done = hy->done || hyps_is_done(hy, gs, cd[0].s, len + 1);
            }
        }
        /* reorder the rows (and their caches), then append the tokens */
        for (int r = 0; r < R; r++) memcpy(ids2 + (size_t)r * L, g->ids + (size_t)src[r] * L, sizeof(int32_t) * len);
        for (int r = 0; r < R; r++) {
            memcpy(g->ids + (size_t)r * L, ids2 + (size_t)r * L, sizeof(int32_t) * len);
            g->ids[(size_t)r * L + len] = ntok[r];
            scores[r] = nscores[r];
        }
        if ((st = mc_coca_cache_reorder(g->c, src, R, g->err)) != MC_OK) goto done;
        len++;
        int all_done = 1;
        for (int k = 0; k < n * G; k++) all_done &= H[k].done;
        if (all_done || len >= L) break;
    }
    /* finalize */
    for (int b = 0; b < n; b++) {
        for (int gr = 0; gr < G; gr++) {
            hyps *hy = &H[b * G + gr];
            if (hy->done) continue;
            for (int j = 0; j < gs; j++) {
                int r = b * B + gr * gs + j;
                hyps_add(hy, gs, g->ids + (size_t)r * L, len, scores[r], len, L);
            }
        }
        /* best over the groups: a stable ascending sort, then the last */
        const hyp *best = NULL;
        for (int gr = 0; gr < G; gr++) {
            const hyps *hy = &H[b * G + gr];
            for (int j = 0; j < hy->n; j++)
                if (!best || hy->h[j].score >= best->score) best = &hy->h[j];
        }
        int32_t *row = out + (size_t)b * cap;
        for (int k = 0; k < cap; k++) row[k] = g->pad;
        int k = best ? best->len : 0;
        if (best) memcpy(row, best->tok, sizeof(int32_t) * k);
        if (k < L) row[k++] = MC_TOKEN_EOT;
        lens[b] = k;
    }
done:
    free(scores);
    free(nscores);
    free(ntok);
    free(src);
    free(ids2);
    free(pen);
    free(cd);
    free(H);
    free(hbuf);
    free(hmem);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */
/* ------------------------------------------------------------------------ */

static mc_status check_params(const mc_coca *m, const mc_generate_params *p, int n, int cap, mc_error *err) {
    mc_coca_dims d;
    mc_coca_get_dims(m, &d);
    if (n < 0) return mc_fail(err, MC_ERR_INVALID_ARG, "generate: %d images", n);
    if (p->type < MC_GEN_GREEDY || p->type > MC_GEN_TOP_P)
        return mc_fail(err, MC_ERR_INVALID_ARG, "generate: unknown generation type %d", (int)p->type);
    if (p->seq_len < 2 || p->seq_len > d.context_length)
        return mc_fail(err, MC_ERR_INVALID_ARG, "generate: seq_len %d outside 2..%d (the captioner's context)", p->seq_len,
                       d.context_length);
    if (p->min_seq_len < 0 || p->min_seq_len >= p->seq_len)
        return mc_fail(err, MC_ERR_INVALID_ARG, "generate: seq_len (%d) must be larger than min_seq_len (%d)", p->seq_len,
                       p->min_seq_len);
    if (cap < p->seq_len)
        return mc_fail(err, MC_ERR_INVALID_ARG, "generate: %d token slots per caption, seq_len %d needs as many", cap,
                       p->seq_len);
    if (!(p->temperature > 0) || !isfinite(p->temperature))
        return mc_fail(err, MC_ERR_INVALID_ARG, "generate: temperature %g must be positive", p->temperature);
    if (!(p->top_p >= 0 && p->top_p <= 1)) return mc_fail(err, MC_ERR_INVALID_ARG, "generate: top_p %g outside [0, 1]", p->top_p);
    if (p->top_k < 1) return mc_fail(err, MC_ERR_INVALID_ARG, "generate: top_k %d must be positive", p->top_k);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return mc_fail(err, MC_ERR_INVALID_ARG, "generate: repetition_penalty %g must be positive", p->repetition_penalty);
    if (p->type == MC_GEN_BEAM_SEARCH &&
        (p->num_beams < 2 || p->num_beam_groups < 1 || p->num_beam_groups > p->num_beams ||
         p->num_beams % p->num_beam_groups))
        return mc_fail(err, MC_ERR_INVALID_ARG,
                       "generate: num_beams %d must be at least 2 and a multiple of num_beam_groups %d", p->num_beams,
                       p->num_beam_groups);
    if (d.vocab_size <= MC_TOKEN_EOT)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "generate: a vocabulary of %d has no EOT token", d.vocab_size);
    return MC_OK;
}

#define IMG_CHUNK 8

static mc_status generate(const mc_coca *m, const float *pixels, int n, const mc_generate_params *p, int32_t *out,
                          int cap, int *lens, int cached, mc_error *err) {
    mc_status st = check_params(m, p, n, cap, err);
    if (st != MC_OK || n == 0) return st;
    mc_coca_dims d;
    mc_coca_get_dims(m, &d);
    int prev = mc_kernels_set_local_threads(p->threads > 0 ? p->threads : -1);
    int beams = p->type == MC_GEN_BEAM_SEARCH ? p->num_beams : 1;
    size_t img_floats = (size_t)3 * d.image_size * d.image_size, emb_floats = (size_t)d.img_tokens * d.img_dim;
    int chunk = n < IMG_CHUNK ? n : IMG_CHUNK, R = chunk * beams, L = p->seq_len;
    gen_ctx g = {.m = m, .p = p, .cached = cached, .V = d.vocab_size, .pad = mc_coca_pad_id(m), .err = err};
    float *embs = mc_malloc_array((size_t)chunk * emb_floats, sizeof(float));
    g.ids = mc_malloc_array((size_t)R * L, sizeof(int32_t));
    g.seqs = mc_malloc_array((size_t)R, sizeof(int));
    g.in = mc_malloc_array((size_t)R * L, sizeof(int32_t));
    g.logits = mc_malloc_array((size_t)R * d.vocab_size, sizeof(float));
    if (!embs || !g.ids || !g.seqs || !g.in || !g.logits) {
        st = mc_fail(err, MC_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    for (int i0 = 0; i0 < n && st == MC_OK; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        st = mc_coca_encode_image(m, pixels + (size_t)i0 * img_floats, k, NULL, embs, err);
        if (st != MC_OK) break;
        st = mc_coca_cache_new(m, k * beams, L, k, &g.c, err);
        if (st != MC_OK) break;
        for (int i = 0; i < k && st == MC_OK; i++) st = mc_coca_cache_set_image(m, g.c, i, embs + (size_t)i * emb_floats, err);
        if (st != MC_OK) { mc_coca_cache_free(g.c); g.c = NULL; break; }
        if (p->type == MC_GEN_BEAM_SEARCH) {
            st = run_beams(&g, k, out + (size_t)i0 * cap, cap, lens + i0);
        } else {
            for (int i = 0; i < k; i++) mc_coca_cache_attach(g.c, i, i);
            mc_generate_params q = *p;
            q.seed = p->seed + (uint64_t)i0;   /* image i0 + i draws from stream (seed, i0 + i) */
            g.p = &q;
            st = run_sampling(&g, k, lens + i0);
            g.p = p;
            for (int i = 0; i < k && st == MC_OK; i++) {
                int32_t *row = out + (size_t)(i0 + i) * cap;
                for (int j = 0; j < cap; j++) row[j] = j < lens[i0 + i] ? g.ids[(size_t)i * L + j] : g.pad;
            }
        }
        mc_coca_cache_free(g.c);
        g.c = NULL;
    }
done:
    mc_kernels_set_local_threads(prev);
    free(embs);
    free(g.ids);
    free(g.seqs);
    free(g.in);
    free(g.logits);
    return st;
}

mc_status mc_coca_generate(const mc_coca *m, const float *pixels, int n, const mc_generate_params *p, int32_t *out,
                           int cap, int *lens, mc_error *err) {
    return generate(m, pixels, n, p, out, cap, lens, 1, err);
}

mc_status mc_coca_generate_nocache(const mc_coca *m, const float *pixels, int n, const mc_generate_params *p,
                                   int32_t *out, int cap, int *lens, mc_error *err) {
    return generate(m, pixels, n, p, out, cap, lens, 0, err);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

struct mc_captioner {
    mc_coca *m;
};

mc_status mc_captioner_load(const char *path, mc_captioner **out, mc_error *err) {
    if (!out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_captioner_load: out is NULL");
    *out = NULL;
    mc_captioner *c = calloc(1, sizeof *c);
    if (!c) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = mc_coca_load(path, &c->m, err);
    if (st != MC_OK) { free(c); return st; }
    *out = c;
    return MC_OK;
}

void mc_captioner_free(mc_captioner *cap) {
    if (!cap) return;
    mc_coca_free(cap->m);
    free(cap);
}

void mc_captioner_get_preprocess(const mc_captioner *cap, mc_preprocess_params *out) {
    mc_coca_get_preprocess(cap->m, out);
}

int mc_captioner_context_length(const mc_captioner *cap) {
    mc_coca_dims d;
    mc_coca_get_dims(cap->m, &d);
    return d.context_length;
}

mc_status mc_caption_generate(const mc_captioner *cap, const float *pixels, int n, const mc_generate_params *p,
                              int32_t *tokens_out, int cap_tokens, int *lengths, mc_error *err) {
    if (!cap || !p || (n > 0 && (!pixels || !tokens_out || !lengths)))
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_caption_generate: NULL argument");
    return mc_coca_generate(cap->m, pixels, n, p, tokens_out, cap_tokens, lengths, err);
}

mc_status mc_caption_decode(const mc_tokenizer *tok, const int32_t *ids, int n, char **text_out, mc_error *err) {
    char *t = NULL;
    mc_status st = mc_tokenizer_decode(tok, ids, n, &t, err);
    if (st != MC_OK) return st;
    /* .split("<end_of_text>")[0].split("<start_of_text>")[-1].split(".")[0].rstrip() */
    char *e = strstr(t, "<end_of_text>");
    if (e) *e = 0;
    char *s = t;
    for (char *q; (q = strstr(s, "<start_of_text>"));) s = q + strlen("<start_of_text>");
    char *dot = strchr(s, '.');
    if (dot) *dot = 0;
    size_t k = strlen(s);
    /* Python's str.rstrip(): ASCII whitespace and the Unicode spaces a caption can hold */
    while (k > 0 && (s[k - 1] == ' ' || (s[k - 1] >= '\t' && s[k - 1] <= '\r') || (s[k - 1] >= 0x1c && s[k - 1] <= 0x1f)))
        k--;
    memmove(t, s, k);
    t[k] = 0;
    *text_out = t;
    return MC_OK;
}
