/*
 * serve/pool.c - the encoder pool (see pool.h).
 *
 * A request is a job on a FIFO queue.  A free worker looks at the head job's
 * kind and claims items in queue order, from the head job and the jobs after
 * it while they are of the same kind, up to max_batch; a job leaves the queue
 * when all its items are claimed.  The worker copies the claimed inputs into
 * its own batch, runs one forward pass, and copies each row back to its job.
 * The submitting thread owns the job (on its stack) and waits for it: its
 * buffers stay valid while any of its items are running.
 */
#include "serve/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pool_job {
    mc_pool_kind kind;
    const void *data;
    float *out;
    int n;
    int next;                 /* items claimed */
    int running;              /* claimed, not finished */
    int done;                 /* finished (encoded or failed) */
    mc_status st;
    mc_error err;
    pthread_cond_t cv;
    struct pool_job *q_next;
} pool_job;

typedef struct seg {
    pool_job *job;
    int first, count;
} seg;

typedef struct worker {
    mc_pool *pool;
    pthread_t thread;
    int started;
    mc_context *ctx;
    int32_t *tokens;          /* [max_batch, L] */
    float *pixels;            /* [max_batch, plane] */
    float *out;               /* [max_batch, D] */
    seg *segs;                /* [max_batch] */
} worker;

struct mc_pool {
    const mc_model *model;
    mc_pool_params p;
    size_t L, plane, D;
    pthread_mutex_t lock;
    pthread_cond_t work;
    pool_job *head, *tail;
    int stop;
    mc_pool_stats stats;
    worker *w;
};

mc_pool_params mc_pool_default_params(void) {
    mc_pool_params p = {1, 1, 8, 1};
    return p;
}

static void queue_remove(mc_pool *p, pool_job *j) {
    pool_job **pp = &p->head, *prev = NULL;
    while (*pp && *pp != j) { prev = *pp; pp = &(*pp)->q_next; }
    if (!*pp) return;
    *pp = j->q_next;
    if (p->tail == j) p->tail = prev;
    j->q_next = NULL;
}

/* Claims up to max_batch items of the head job's kind; lock held. */
static int claim(mc_pool *p, worker *w, mc_pool_kind *kind) {
    int count = 0, n_segs = 0;
    *kind = p->head->kind;
    while (p->head && p->head->kind == *kind && count < p->p.max_batch) {
        pool_job *j = p->head;
        int take = j->n - j->next;
        if (take > p->p.max_batch - count) take = p->p.max_batch - count;
        w->segs[n_segs++] = (seg){j, j->next, take};
        j->next += take;
        j->running += take;
        count += take;
        if (j->next == j->n) queue_remove(p, j);
    }
    p->stats.passes++;
    p->stats.items += count;
    if (n_segs > 1) p->stats.shared_passes++;
    if (count > p->stats.max_batch_seen) p->stats.max_batch_seen = count;
    return n_segs;
}

/* One full batch through each tower before the first request: the context's
 * scratch is touched once, so that neither the first requests' latency nor
 * the resident size changes later with the batch sizes that come. */
static void warm_up(worker *w) {
    mc_pool *p = w->pool;
    int B = p->p.max_batch;
    memset(w->tokens, 0, (size_t)B * p->L * sizeof(int32_t));
    for (int i = 0; i < B; i++) {
        w->tokens[(size_t)i * p->L] = MC_TOKEN_SOT;
        w->tokens[(size_t)i * p->L + 1] = MC_TOKEN_EOT;
    }
    (void)mc_encode_text(w->ctx, w->tokens, B, 1, w->out);     /* a model without the tower: a no-op error */
    if (p->plane) {
        memset(w->pixels, 0, (size_t)B * p->plane * sizeof(float));
        (void)mc_encode_image(w->ctx, w->pixels, B, 1, w->out);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    mc_pool *p = w->pool;
    if (p->p.warm_up) warm_up(w);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work, &p->lock);
        if (!p->head) break;   /* stopping and nothing queued */
        mc_pool_kind kind;
        int n_segs = claim(p, w, &kind);
        pthread_mutex_unlock(&p->lock);

        int count = 0;
        for (int s = 0; s < n_segs; s++) {
            seg *g = &w->segs[s];
            if (kind == MC_POOL_TEXT)
                memcpy(w->tokens + (size_t)count * p->L, (const int32_t *)g->job->data + (size_t)g->first * p->L,
                       (size_t)g->count * p->L * sizeof(int32_t));
            else
                memcpy(w->pixels + (size_t)count * p->plane, (const float *)g->job->data + (size_t)g->first * p->plane,
                       (size_t)g->count * p->plane * sizeof(float));
            count += g->count;
        }
        mc_status st = kind == MC_POOL_TEXT ? mc_encode_text(w->ctx, w->tokens, count, 1, w->out)
                                            : mc_encode_image(w->ctx, w->pixels, count, 1, w->out);
        count = 0;
        for (int s = 0; s < n_segs; s++) {
            seg *g = &w->segs[s];
            if (st == MC_OK)
                memcpy(g->job->out + (size_t)g->first * p->D, w->out + (size_t)count * p->D,
                       (size_t)g->count * p->D * sizeof(float));
            count += g->count;
        }

        pthread_mutex_lock(&p->lock);
        for (int s = 0; s < n_segs; s++) {
            pool_job *j = w->segs[s].job;
            if (st != MC_OK && j->st == MC_OK) {
                j->st = st;
                j->err = *mc_context_last_error(w->ctx);
            }
            j->running -= w->segs[s].count;
            j->done += w->segs[s].count;
            pthread_cond_signal(&j->cv);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void mc_pool_free(mc_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->p.n_workers; i++) {
        worker *w = &p->w[i];
        if (w->started) pthread_join(w->thread, NULL);
        mc_context_free(w->ctx);
        free(w->tokens);
        free(w->pixels);
        free(w->out);
        free(w->segs);
    }
    free(p->w);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    free(p);
}

mc_status mc_pool_new(const mc_model *model, const mc_pool_params *params, mc_pool **out, mc_error *err) {
    *out = NULL;
    mc_pool_params pp = params ? *params : mc_pool_default_params();
    if (pp.n_workers < 1 || pp.n_workers > 256)
        return mc_fail(err, MC_ERR_INVALID_ARG, "encoder pool: %d workers (expected 1..256)", pp.n_workers);
    if (pp.max_batch < 1 || pp.max_batch > 1024)
        return mc_fail(err, MC_ERR_INVALID_ARG, "encoder pool: batch of %d (expected 1..1024)", pp.max_batch);
    if (pp.threads_per_worker < 0)
        return mc_fail(err, MC_ERR_INVALID_ARG, "encoder pool: %d threads per worker", pp.threads_per_worker);
    mc_model_info info;
    mc_model_get_info(model, &info);
    mc_pool *p = calloc(1, sizeof *p);
    if (!p) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    p->model = model;
    p->p = pp;
    p->L = (size_t)(info.context_length > 0 ? info.context_length : MC_CONTEXT_LENGTH);
    p->plane = (size_t)3 * (size_t)info.image_size * (size_t)info.image_size;
    p->D = (size_t)info.embed_dim;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    p->w = calloc((size_t)pp.n_workers, sizeof *p->w);
    if (!p->w) {
        p->p.n_workers = 0;
        mc_pool_free(p);
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = pp.threads_per_worker;
    cp.max_batch = pp.max_batch;
    mc_status st = MC_OK;
    size_t B = (size_t)pp.max_batch;
    for (int i = 0; i < pp.n_workers && st == MC_OK; i++) {
        worker *w = &p->w[i];
        w->pool = p;
        if ((st = mc_context_new(model, &cp, &w->ctx, err)) != MC_OK) break;
        w->tokens = mc_malloc_array(B * p->L, sizeof(int32_t));
        w->pixels = p->plane ? mc_malloc_array(B * p->plane, sizeof(float)) : malloc(1);
        w->out = mc_malloc_array(B * p->D, sizeof(float));
        w->segs = mc_malloc_array(B, sizeof(seg));
        if (!w->tokens || !w->pixels || !w->out || !w->segs) {
            st = mc_fail(err, MC_ERR_NOMEM, "encoder pool: out of memory for a batch of %d", pp.max_batch);
            break;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            st = mc_fail(err, MC_ERR_NOMEM, "encoder pool: cannot start worker thread %d", i + 1);
            break;
        }
        w->started = 1;
    }
    if (st != MC_OK) {
        mc_pool_free(p);
        return st;
    }
    *out = p;
    return MC_OK;
}

mc_status mc_pool_encode(mc_pool *p, mc_pool_kind kind, const void *data, int n, float *out, double timeout_s,
                         int *timed_out, mc_error *err) {
    if (timed_out) *timed_out = 0;
    if (n < 1 || !data || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "encoder pool: nothing to encode");
    pool_job j;
    memset(&j, 0, sizeof j);
    j.kind = kind;
    j.data = data;
    j.out = out;
    j.n = n;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j.cv, &ca);
    pthread_condattr_destroy(&ca);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_s > 0) {
        double whole = (double)(long)timeout_s;
        deadline.tv_sec += (time_t)whole;
        deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    }

    pthread_mutex_lock(&p->lock);
    if (p->stop) {
        pthread_mutex_unlock(&p->lock);
        pthread_cond_destroy(&j.cv);
        return mc_fail(err, MC_ERR_INVALID_ARG, "encoder pool: shutting down");
    }
    if (p->tail) p->tail->q_next = &j;
    else p->head = &j;
    p->tail = &j;
    pthread_cond_broadcast(&p->work);
    int late = 0;
    while (j.done < j.n) {
        if (timeout_s > 0 && !late) {
            if (pthread_cond_timedwait(&j.cv, &p->lock, &deadline) == ETIMEDOUT && j.next < j.n) {
                /* withdraw what no worker has claimed, wait for what is running */
                queue_remove(p, &j);
                late = 1;
                j.done += j.n - j.next;
                j.next = j.n;
            }
        } else {
            pthread_cond_wait(&j.cv, &p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&j.cv);
    if (late) {
        if (timed_out) *timed_out = 1;
        return mc_fail(err, MC_ERR_IO, "the encoders are busy: not started within %.3g s", timeout_s);
    }
    if (j.st != MC_OK) {
        if (err) *err = j.err;
        return j.st;
    }
    return MC_OK;
}

void mc_pool_get_stats(mc_pool *p, mc_pool_stats *stats) {
    pthread_mutex_lock(&p->lock);
    *stats = p->stats;
    pthread_mutex_unlock(&p->lock);
}
