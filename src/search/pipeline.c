/*
 * search/pipeline.c - batched image embedding: decode threads working one
 * batch ahead of the encoder, and workers each with their own context taking
 * batches from a shared counter (pipeline.h).
 */
#include "search/pipeline.h"
#include "core/core.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DECODE_THREADS 16
#define MAX_WORKERS 64
#define NO_BATCH ((size_t)-1)

/* ---- one batch slot: prepared by decode threads while the worker encodes the other ---- */

typedef struct slot {
    const mc_pipeline *p;
    size_t first, count;       /* items [first, first+count) */
    float *pixels;             /* batch slots of 3*S*S */
    mc_error *errs;            /* one per item */
    int *state;                /* one per item: MC_PIPE_* */
    size_t next;               /* next item to take */
    pthread_mutex_t lock;
    pthread_t threads[MAX_DECODE_THREADS];
    int n_threads;
} slot;

static void *slot_worker(void *arg) {
    slot *s = arg;
    size_t plane = (size_t)3 * s->p->pp->size * s->p->pp->size;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        size_t k = s->next++;
        pthread_mutex_unlock(&s->lock);
        if (k >= s->count) break;
        mc_error_clear(&s->errs[k]);
        s->state[k] = s->p->prepare(s->p->user, s->first + k, s->pixels + k * plane, &s->errs[k]);
    }
    return NULL;
}

static void slot_start(slot *s, size_t first, size_t count) {
    s->first = first;
    s->count = count;
    s->next = 0;
    s->n_threads = 0;
    int nt = s->p->decode_threads;
    if (nt < 1) nt = 1;
    if (nt > MAX_DECODE_THREADS) nt = MAX_DECODE_THREADS;
    if ((size_t)nt > count) nt = (int)count;
    for (int t = 0; t < nt; t++)
        if (pthread_create(&s->threads[s->n_threads], NULL, slot_worker, s) == 0) s->n_threads++;
    if (s->n_threads == 0) slot_worker(s);   /* no threads: prepare here */
}

static void slot_wait(slot *s) {
    for (int t = 0; t < s->n_threads; t++) pthread_join(s->threads[t], NULL);
    s->n_threads = 0;
}

/* ---- the run ---- */

typedef struct run {
    const mc_pipeline *p;
    size_t D, plane, batch, n_batches;
    pthread_mutex_t lock;      /* everything below, and consume */
    size_t next_batch;
    int failed;
    mc_error err;              /* the first failure */
} run;

typedef struct worker {
    run *r;
    mc_context *ctx;
    int own_ctx;
    slot slots[2];
    float *out;                /* [batch, D] */
} worker;

static size_t claim_batch(run *r) {
    pthread_mutex_lock(&r->lock);
    size_t b = r->failed || r->next_batch >= r->n_batches ? NO_BATCH : r->next_batch++;
    pthread_mutex_unlock(&r->lock);
    return b;
}

static void start_batch(run *r, slot *s, size_t b) {
    size_t first = b * r->batch;
    slot_start(s, first, r->p->n - first < r->batch ? r->p->n - first : r->batch);
}

static void run_fail(run *r, const mc_error *e) {
    pthread_mutex_lock(&r->lock);
    if (!r->failed) r->err = *e;
    r->failed = 1;
    pthread_mutex_unlock(&r->lock);
}

/* Encodes a prepared batch's items (packed to the front), then hands it to consume. */
static void finish_batch(worker *w, slot *s) {
    run *r = w->r;
    size_t good = 0;
    for (size_t k = 0; k < s->count; k++) {
        if (s->state[k] != MC_PIPE_ENCODE) continue;
        if (good != k) memmove(s->pixels + good * r->plane, s->pixels + k * r->plane, r->plane * sizeof(float));
        good++;
    }
    pthread_mutex_lock(&r->lock);
    int failed = r->failed;
    pthread_mutex_unlock(&r->lock);
    if (!failed && good && mc_encode_image(w->ctx, s->pixels, (int)good, r->p->normalize, w->out) != MC_OK) {
        run_fail(r, mc_context_last_error(w->ctx));
        failed = 1;
    }
    /* a failed run still shows consume the batch (emb NULL), for its item errors */
    mc_error e;
    mc_error_clear(&e);
    pthread_mutex_lock(&r->lock);
    const float *emb = failed || r->failed ? NULL : w->out;
    mc_status st = r->p->consume(r->p->user, s->first, s->count, s->state, s->errs, emb, &e);
    if (st != MC_OK && !r->failed) {
        r->failed = 1;
        r->err = e;
        r->err.status = st;
    }
    pthread_mutex_unlock(&r->lock);
}

static void *worker_run(void *arg) {
    worker *w = arg;
    size_t b = claim_batch(w->r);
    if (b == NO_BATCH) return NULL;
    start_batch(w->r, &w->slots[0], b);
    for (int cur = 0; b != NO_BATCH; cur ^= 1) {
        slot_wait(&w->slots[cur]);
        size_t nb = claim_batch(w->r);
        if (nb != NO_BATCH) start_batch(w->r, &w->slots[cur ^ 1], nb);
        finish_batch(w, &w->slots[cur]);
        b = nb;
    }
    return NULL;
}

static int worker_init(worker *w, run *r) {
    memset(w, 0, sizeof *w);
    w->r = r;
    w->out = malloc(r->batch * r->D * sizeof(float));
    int bad = !w->out;
    for (int b = 0; b < 2; b++) {
        slot *s = &w->slots[b];
        s->p = r->p;
        s->pixels = malloc(r->batch * r->plane * sizeof(float));
        s->errs = calloc(r->batch, sizeof(mc_error));
        s->state = calloc(r->batch, sizeof(int));
        pthread_mutex_init(&s->lock, NULL);
        bad |= !s->pixels || !s->errs || !s->state;
    }
    return bad;
}

static void worker_free(worker *w) {
    for (int b = 0; b < 2; b++) {
        free(w->slots[b].pixels);
        free(w->slots[b].errs);
        free(w->slots[b].state);
        pthread_mutex_destroy(&w->slots[b].lock);
    }
    free(w->out);
    if (w->own_ctx) mc_context_free(w->ctx);
}

static int n_cores(void) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

mc_status mc_pipeline_run(const mc_pipeline *p, mc_error *err) {
    if (!p || !p->model || !p->pp || !p->prepare || !p->consume)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_pipeline_run: NULL argument");
    if (p->workers > MAX_WORKERS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "workers: at most %d, got %d", MAX_WORKERS, p->workers);
    if (p->pp->size < 1) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_pipeline_run: image size %d", p->pp->size);
    mc_model_info info;
    mc_model_get_info(p->model, &info);
    run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.D = (size_t)info.embed_dim;
    r.plane = (size_t)3 * p->pp->size * p->pp->size;
    r.batch = p->batch < 1 ? 1 : (size_t)p->batch;
    r.n_batches = (p->n + r.batch - 1) / r.batch;
    if (r.n_batches == 0) return MC_OK;
    int k = p->workers < 1 ? 1 : p->workers;   /* more workers than batches would only hold memory */
    if ((size_t)k > r.n_batches) k = (int)r.n_batches;
    int threads = p->threads > 0 ? p->threads : n_cores();
    int per = threads / k > 0 ? threads / k : 1;
    pthread_mutex_init(&r.lock, NULL);
    worker *w = calloc((size_t)k, sizeof *w);
    mc_status st = w ? MC_OK : mc_fail(err, MC_ERR_NOMEM, "out of memory");
    int inited = 0;
    for (; st == MC_OK && inited < k; inited++) {   /* a worker counts as inited (to be freed) once tried */
        if (worker_init(&w[inited], &r)) {
            st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
            continue;
        }
        if (k == 1 && p->ctx) {
            w[inited].ctx = p->ctx;
            continue;
        }
        mc_context_params cp = mc_context_default_params();
        cp.n_threads = per;
        cp.max_batch = (int)r.batch;
        st = mc_context_new(p->model, &cp, &w[inited].ctx, err);
        w[inited].own_ctx = st == MC_OK;
    }
    if (st == MC_OK) {
        if (k == 1) {
            worker_run(&w[0]);
        } else {
            pthread_t th[MAX_WORKERS];
            int started = 0;
            for (; started < k; started++)
                if (pthread_create(&th[started], NULL, worker_run, &w[started])) break;
            if (started == 0) worker_run(&w[0]);   /* no threads: one worker, here */
            for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        }
        if (r.failed) st = mc_fail(err, r.err.status ? r.err.status : MC_ERR_INTERNAL, "%s", r.err.message);
    }
    for (int i = 0; i < inited; i++) worker_free(&w[i]);
    free(w);
    pthread_mutex_destroy(&r.lock);
    return st;
}
