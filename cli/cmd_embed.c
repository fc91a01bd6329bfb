/*
 * cmd_embed.c - the 'embed-image' and 'embed-text' commands: embeddings as a
 * float32 [N, D] .npy (-o) or one JSON array per line on stdout.  Images are
 * decoded by a small thread pool while the previous batch is being encoded;
 * --workers K runs K such pipelines, each with its own context, taking
 * batches from a shared counter and writing their rows of the output.
 * Also the image-list and batch-encoding helpers that 'classify' shares.
 */
#include "cli.h"
#include "core/core.h"
#include "embed.h"
#include "progress.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- image lists ---- */

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".webp", ".jpe"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_push(cli_image_list *l, char *path) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        char **np = realloc(l->paths, nc * sizeof *np);
        if (!np) { free(path); return -1; }
        l->paths = np;
        l->cap = nc;
    }
    l->paths[l->n++] = path;
    return 0;
}

int cli_image_list_build(const char *const *args, int n, cli_image_list *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (stat(args[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            DIR *d = opendir(args[i]);
            if (!d) return cli_errorf("%s: cannot open folder: %s", args[i], strerror(errno));
            size_t first = out->n;
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
                size_t len = strlen(args[i]) + strlen(e->d_name) + 2;
                char *p = malloc(len);
                if (!p) { closedir(d); return cli_errorf("out of memory"); }
                size_t al = strlen(args[i]);
                snprintf(p, len, "%s%s%s", args[i], (al && args[i][al - 1] == '/') ? "" : "/", e->d_name);
                if (list_push(out, p)) { closedir(d); return cli_errorf("out of memory"); }
            }
            closedir(d);
            qsort(out->paths + first, out->n - first, sizeof *out->paths, cmp_str);
        } else {
            char *p = strdup(args[i]);
            if (!p || list_push(out, p)) return cli_errorf("out of memory");
        }
    }
    return 0;
}

void cli_image_list_free(cli_image_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

/* ---- decode pool: decodes one batch while the caller encodes another ---- */

typedef struct decode_job {
    const cli_image_list *list;
    const mc_preprocess_params *pp;
    size_t first, count;       /* images [first, first+count) */
    float *pixels;             /* count slots of 3*S*S */
    mc_error *errs;            /* one per slot */
    int *ok;                   /* one per slot */
    size_t next;               /* next slot to take */
    pthread_mutex_t lock;
    pthread_t threads[16];
    int n_threads;
} decode_job;

static void *decode_worker(void *arg) {
    decode_job *j = arg;
    size_t plane = (size_t)3 * j->pp->size * j->pp->size;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        size_t k = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (k >= j->count) break;
        mc_error_clear(&j->errs[k]);
        j->ok[k] = mc_image_preprocess_file(j->list->paths[j->first + k], j->pp, j->pixels + k * plane,
                                            &j->errs[k]) == MC_OK;
    }
    return NULL;
}

static void decode_start(decode_job *j, size_t first, size_t count, int n_threads) {
    j->first = first;
    j->count = count;
    j->next = 0;
    j->n_threads = 0;
    if (n_threads > 16) n_threads = 16;
    if ((size_t)n_threads > count) n_threads = (int)count;
    for (int t = 0; t < n_threads; t++)
        if (pthread_create(&j->threads[j->n_threads], NULL, decode_worker, j) == 0) j->n_threads++;
    if (j->n_threads == 0) decode_worker(j);   /* no threads: decode here */
}

static void decode_wait(decode_job *j) {
    for (int t = 0; t < j->n_threads; t++) pthread_join(j->threads[t], NULL);
    j->n_threads = 0;
}

/* ---- workers: each owns a context and two decode jobs, batches from a shared counter ---- */

#define NO_BATCH ((size_t)-1)

typedef struct embed_run {
    const cli_image_list *list;
    const cli_embed_opts *o;
    size_t n, D, plane, batch, n_batches;
    float *emb;                /* [n, D]: row i is image i's embedding */
    unsigned char *ok;         /* [n]: image i was embedded */
    pthread_mutex_t lock;      /* everything below, and stderr */
    size_t next_batch;
    size_t n_done;             /* images handled (embedded or skipped) */
    cli_progress bar;
    int failed;                /* no more batches are handed out */
    size_t err_at;             /* list index the error is about (lowest wins) */
    char *err;                 /* the error to report, malloc'd */
} embed_run;

typedef struct embed_worker {
    embed_run *r;
    mc_context *ctx;
    decode_job jobs[2];
    float *out;                /* [batch, D] */
} embed_worker;

static size_t claim_batch(embed_run *r) {
    pthread_mutex_lock(&r->lock);
    size_t b = r->failed || r->next_batch >= r->n_batches ? NO_BATCH : r->next_batch++;
    pthread_mutex_unlock(&r->lock);
    return b;
}

static void start_batch(embed_worker *w, decode_job *j, size_t b) {
    embed_run *r = w->r;
    size_t first = b * r->batch, cnt = r->n - first < r->batch ? r->n - first : r->batch;
    decode_start(j, first, cnt, r->o->decode_threads);
}

/* Records an error about image `at` (keeps the lowest), stops the hand-out. */
static void run_fail(embed_run *r, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void run_fail(embed_run *r, size_t at, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (len >= (int)sizeof buf && (msg = malloc((size_t)len + 1))) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    if (!msg) msg = strdup(buf);
    pthread_mutex_lock(&r->lock);
    r->failed = 1;
    if (!r->err || at < r->err_at) {
        free(r->err);
        r->err = msg;
        r->err_at = at;
        msg = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    free(msg);
}

/* Checks a decoded batch (skips or fails its bad images), then encodes the
 * good ones into their rows unless the run has failed. */
static void finish_batch(embed_worker *w, decode_job *j) {
    embed_run *r = w->r;
    const cli_embed_opts *o = r->o;
    const cli_image_list *list = r->list;
    size_t good = 0, first = j->first;
    for (size_t k = 0; k < j->count; k++) {
        if (!j->ok[k]) {
            const char *path = list->paths[first + k];
            const char *msg = j->errs[k].message[0] ? j->errs[k].message : "cannot decode";
            int named = strstr(msg, path) != NULL;   /* the message names the file already */
            if (o->strict) {
                if (named) run_fail(r, first + k, "%s", msg);
                else run_fail(r, first + k, "%s: %s", path, msg);
                continue;
            }
            pthread_mutex_lock(&r->lock);
            cli_progress_end(&r->bar);
            if (named) fprintf(stderr, "mobileclip: skipping %s\n", msg);
            else fprintf(stderr, "mobileclip: skipping %s: %s\n", path, msg);
            pthread_mutex_unlock(&r->lock);
            continue;
        }
        if (good != k) memmove(j->pixels + good * r->plane, j->pixels + k * r->plane, r->plane * sizeof(float));
        good++;
    }
    pthread_mutex_lock(&r->lock);
    int failed = r->failed;
    pthread_mutex_unlock(&r->lock);
    if (failed) return;
    if (good && mc_encode_image(w->ctx, j->pixels, (int)good, o->normalize, w->out)) {
        run_fail(r, first, "%s", mc_context_last_error(w->ctx)->message);
        return;
    }
    for (size_t k = 0, g = 0; k < j->count; k++) {
        if (!j->ok[k]) continue;
        memcpy(r->emb + (first + k) * r->D, w->out + g++ * r->D, r->D * sizeof(float));
        r->ok[first + k] = 1;
    }
    pthread_mutex_lock(&r->lock);
    r->n_done += j->count;
    cli_progress_update(&r->bar, (int64_t)r->n_done);
    pthread_mutex_unlock(&r->lock);
}

/* Decodes the next batch while encoding the current one, until the batches
 * run out or the run fails.  Every batch taken is at least checked, so that
 * --strict reports the first bad image whatever the worker count. */
static void *embed_worker_run(void *arg) {
    embed_worker *w = arg;
    size_t b = claim_batch(w->r);
    if (b == NO_BATCH) return NULL;
    start_batch(w, &w->jobs[0], b);
    for (int cur = 0; b != NO_BATCH; cur ^= 1) {
        decode_wait(&w->jobs[cur]);
        size_t nb = claim_batch(w->r);
        if (nb != NO_BATCH) start_batch(w, &w->jobs[cur ^ 1], nb);
        finish_batch(w, &w->jobs[cur]);
        b = nb;
    }
    return NULL;
}

static int worker_init(embed_worker *w, embed_run *r, const mc_preprocess_params *pp) {
    memset(w, 0, sizeof *w);
    w->r = r;
    w->out = malloc(r->batch * r->D * sizeof(float));
    int bad = !w->out;
    for (int b = 0; b < 2; b++) {
        decode_job *j = &w->jobs[b];
        j->list = r->list;
        j->pp = pp;
        j->pixels = malloc(r->batch * r->plane * sizeof(float));
        j->errs = calloc(r->batch, sizeof(mc_error));
        j->ok = calloc(r->batch, sizeof(int));
        pthread_mutex_init(&j->lock, NULL);
        bad |= !j->pixels || !j->errs || !j->ok;
    }
    return bad;
}

static void worker_free(embed_worker *w, int own_ctx) {
    for (int b = 0; b < 2; b++) {
        free(w->jobs[b].pixels);
        free(w->jobs[b].errs);
        free(w->jobs[b].ok);
        pthread_mutex_destroy(&w->jobs[b].lock);
    }
    free(w->out);
    if (own_ctx) mc_context_free(w->ctx);
}

static int n_cores(void) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

int cli_embed_images(mc_context *ctx, const mc_model *model, const mc_model_info *info,
                     const mc_preprocess_params *pp, const cli_image_list *list, const cli_embed_opts *o,
                     float **emb_out, size_t **rows_out, size_t *n_out) {
    embed_run r;
    memset(&r, 0, sizeof r);
    r.list = list;
    r.o = o;
    r.n = list->n;
    r.D = (size_t)info->embed_dim;
    r.plane = (size_t)3 * pp->size * pp->size;
    r.batch = o->batch < 1 ? 1 : (size_t)o->batch;
    r.n_batches = (r.n + r.batch - 1) / r.batch;
    pthread_mutex_init(&r.lock, NULL);
    /* more workers than batches would only hold memory */
    int k = o->workers < 1 ? 1 : o->workers;
    if ((size_t)k > r.n_batches) k = r.n_batches ? (int)r.n_batches : 1;
    int threads = o->threads > 0 ? o->threads : n_cores();
    int per = threads / k > 0 ? threads / k : 1;
    int own = o->workers > 1;   /* one worker: the caller's context, in the calling thread */
    embed_worker *w = calloc((size_t)k, sizeof *w);
    r.emb = malloc((r.n ? r.n : 1) * r.D * sizeof *r.emb);
    r.ok = calloc(r.n ? r.n : 1, 1);
    size_t *rows = malloc((r.n ? r.n : 1) * sizeof *rows);
    int rc = 0, inited = 0;
    if (!w || !r.emb || !r.ok || !rows) rc = cli_errorf("out of memory");
    for (; !rc && inited < k; inited++) {
        if (worker_init(&w[inited], &r, pp)) rc = cli_errorf("out of memory");
        if (!own) w[inited].ctx = ctx;
        else if (!rc) rc = cli_context_new(model, per, (int)r.batch, &w[inited].ctx);
    }
    if (!rc) {
        cli_progress_start(&r.bar, "images", (int64_t)r.n, 0, o->show_progress && r.n >= 16);
        if (!own) {
            embed_worker_run(&w[0]);
        } else {
            pthread_t *th = malloc((size_t)k * sizeof *th);
            int started = 0;
            for (; th && started < k; started++)
                if (pthread_create(&th[started], NULL, embed_worker_run, &w[started])) break;
            if (started == 0) embed_worker_run(&w[0]);   /* no threads: one worker, here */
            for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
            free(th);
        }
        cli_progress_end(&r.bar);
        if (r.failed) rc = r.err ? cli_errorf("%s", r.err) : cli_errorf("out of memory");
    }
    if (!rc) {
        size_t n_rows = 0;
        for (size_t i = 0; i < r.n; i++) {
            if (!r.ok[i]) continue;
            if (n_rows != i) memcpy(r.emb + n_rows * r.D, r.emb + i * r.D, r.D * sizeof(float));
            rows[n_rows++] = i;
        }
        *emb_out = r.emb;
        *rows_out = rows;
        *n_out = n_rows;
        r.emb = NULL;
        rows = NULL;
    }
    for (int i = 0; i < inited; i++) worker_free(&w[i], own);
    free(w);
    free(r.emb);
    free(r.ok);
    free(r.err);
    free(rows);
    pthread_mutex_destroy(&r.lock);
    return rc;
}

int cli_embed_texts(mc_context *ctx, const mc_tokenizer *tok, int context_length, int embed_dim,
                    const char *const *texts, size_t n, int batch, int normalize, float *out) {
    if (batch < 1) batch = 1;
    int32_t *ids = malloc((size_t)batch * (size_t)context_length * sizeof *ids);
    if (!ids) return cli_errorf("out of memory");
    mc_error err;
    for (size_t first = 0; first < n; first += (size_t)batch) {
        size_t cnt = n - first < (size_t)batch ? n - first : (size_t)batch;
        for (size_t k = 0; k < cnt; k++) {
            if (mc_tokenizer_encode(tok, texts[first + k], context_length,
                                    ids + k * (size_t)context_length, &err)) {
                free(ids);
                return cli_errorf("text %zu: %s", first + k + 1, err.message);
            }
        }
        if (mc_encode_text(ctx, ids, (int)cnt, normalize, out + first * (size_t)embed_dim)) {
            free(ids);
            return cli_error(mc_context_last_error(ctx));
        }
    }
    free(ids);
    return 0;
}

/* ---- output ---- */

static void print_rows_json(FILE *f, const float *x, size_t n, size_t d) {
    for (size_t i = 0; i < n; i++) {
        fputc('[', f);
        for (size_t k = 0; k < d; k++) fprintf(f, "%s%.9g", k ? ", " : "", x[i * d + k]);
        fputs("]\n", f);
    }
}

static int write_npy(const char *path, const float *x, size_t n, size_t d) {
    int64_t shape[2] = {(int64_t)n, (int64_t)d};
    mc_error err;
    if (mc_npy_write_f32(path, x, 2, shape, &err)) return cli_error(&err);
    return 0;
}

/* OUT.npy.txt: the input path of each row, one a line (atomic: mc_file_commit) */
static int write_sidecar(const char *out, const cli_image_list *list, const size_t *rows, size_t n) {
    size_t len = strlen(out) + 16;
    char *path = malloc(len), *tmp = malloc(len + 8);
    if (!path || !tmp) { free(path); free(tmp); return cli_errorf("out of memory"); }
    snprintf(path, len, "%s.txt", out);
    snprintf(tmp, len + 8, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    if (!f) {
        rc = cli_errorf("%s: cannot create: %s", tmp, strerror(errno));
    } else {
        for (size_t i = 0; i < n; i++) fprintf(f, "%s\n", list->paths[rows[i]]);
        mc_error err;
        if (mc_file_commit(f, tmp, path, !ferror(f), &err) != MC_OK) rc = cli_error(&err);
    }
    free(path);
    free(tmp);
    return rc;
}

/* ---- embed-image ---- */

static const cli_opt image_opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (see 'mobileclip list')"},
    {"output", 'o', 1, 0, "OUT.npy  write float32 [N, D] (and OUT.npy.txt: the path of each row)"},
    {"batch", 'b', 1, 0, "N  images per forward pass (default 8)"},
    {"threads", 't', 1, 0, "N  compute threads (default: one per core)"},
    {"decode-threads", 0, 1, 0, "N  image decoding threads per worker, working ahead of the encoder (default 2)"},
    {"workers", 0, 1, 0, "K  K batches at once, each on its own context with threads/K threads (1..64, default 1)"},
    {"no-normalize", 0, 0, 0, "raw projected features instead of L2-normalised embeddings"},
    {"strict", 0, 0, 0, "fail when an image cannot be decoded (default: report it, skip it)"},
    {"no-exif", 0, 0, 0, "ignore the EXIF orientation tag"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    CLI_WEIGHTS_OPT,
    {"quiet", 'q', 0, 0, "no progress bar"},
};

/* --workers: 1..CLI_MAX_WORKERS (default 1); prints the error, returns nonzero */
int cli_parse_workers(const char *v, int *out) {
    *out = 1;
    if (v && (cli_parse_int(v, out) || *out < 1 || *out > CLI_MAX_WORKERS))
        return cli_errorf("--workers: expected an integer from 1 to %d, got '%s'", CLI_MAX_WORKERS, v);
    return 0;
}

static int parse_count(const cli_args *a, const char *name, int dflt, int min, int *out) {
    const char *v = cli_get(a, name);
    *out = dflt;
    if (v && (cli_parse_int(v, out) || *out < min))
        return cli_errorf("--%s: expected an integer >= %d, got '%s'", name, min, v);
    return 0;
}

int cmd_embed_image(int argc, char **argv) {
    const int n_opts = (int)(sizeof image_opts / sizeof image_opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, image_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip embed-image -m MODEL [-o OUT.npy] [options] IMAGE|FOLDER...",
                       "Embeds images (JPEG, PNG, WebP; a folder means every image in it, sorted by name).\n"
                       "Without -o: one JSON array per embedded image on stdout, in input order.\n"
                       "Images that cannot be decoded are reported on stderr and skipped (see --strict);\n"
                       "with -o the rows' image paths are written to OUT.npy.txt, one a line.",
                       image_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    int batch, threads, dthreads, workers;
    if (parse_count(&a, "batch", 8, 1, &batch) || parse_count(&a, "threads", 0, 0, &threads) ||
        parse_count(&a, "decode-threads", 2, 1, &dthreads) || cli_parse_workers(cli_get(&a, "workers"), &workers)) {
        cli_args_free(&a);
        return 2;
    }
    if (a.n_pos == 0) {
        cli_args_free(&a);
        return cli_errorf("embed-image: no images given (see --help)") + 1;
    }
    cli_image_list list;
    mc_model *model = NULL;
    mc_context *ctx = NULL;
    float *emb = NULL;
    size_t *rows = NULL, n_rows = 0;
    if ((rc = cli_image_list_build(a.pos, a.n_pos, &list))) goto out;
    if (list.n == 0) { rc = cli_errorf("embed-image: no images found"); goto out; }
    cli_model_opts mo = {cli_get(&a, "model"), cli_get(&a, "config"), NULL, 1, 0, 1, cli_get(&a, "weights")};
    if ((rc = cli_model_load(&mo, &model, NULL, 0, NULL))) goto out;
    mc_model_info info;
    mc_model_get_info(model, &info);
    mc_preprocess_params pp = info.preprocess;
    if (cli_has(&a, "no-exif")) pp.apply_exif = 0;
    if (workers == 1 && (rc = cli_context_new(model, threads, batch, &ctx))) goto out;
    if (dthreads > n_cores()) dthreads = n_cores();
    cli_embed_opts eo = {batch, dthreads, workers, threads, !cli_has(&a, "no-normalize"), cli_has(&a, "strict"),
                         !cli_has(&a, "quiet")};
    rc = cli_embed_images(ctx, model, &info, &pp, &list, &eo, &emb, &rows, &n_rows);
    if (rc) goto out;
    if (n_rows == 0) { rc = cli_errorf("embed-image: no image could be decoded"); goto out; }
    const char *outp = cli_get(&a, "output");
    if (outp) {
        if ((rc = write_npy(outp, emb, n_rows, (size_t)info.embed_dim))) goto out;
        rc = write_sidecar(outp, &list, rows, n_rows);
    } else {
        print_rows_json(stdout, emb, n_rows, (size_t)info.embed_dim);
        if (fflush(stdout) != 0) rc = cli_errorf("cannot write to stdout");
    }
    if (!rc && n_rows < list.n)
        fprintf(stderr, "mobileclip: embedded %zu of %zu images\n", n_rows, list.n);
out:
    free(emb);
    free(rows);
    mc_context_free(ctx);
    mc_model_free(model);
    cli_image_list_free(&list);
    cli_args_free(&a);
    return rc;
}

/* ---- embed-text ---- */

static const cli_opt text_opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (see 'mobileclip list')"},
    {"output", 'o', 1, 0, "OUT.npy  write float32 [N, D]"},
    {"file", 'f', 1, 1, "FILE  read texts from FILE, one a line ('-': stdin); repeatable"},
    {"vocab", 0, 1, 0, "FILE  the BPE vocabulary (default: see 'mobileclip tokenize --help')"},
    {"batch", 'b', 1, 0, "N  texts per forward pass (default 32)"},
    {"threads", 't', 1, 0, "N  compute threads (default: one per core)"},
    {"no-normalize", 0, 0, 0, "raw projected features instead of L2-normalised embeddings"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    CLI_WEIGHTS_OPT,
};

/* Appends the lines of a file (without line ends) to texts. */
static int read_lines(const char *path, char ***texts, size_t *n, size_t *cap) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return cli_errorf("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            char **nt = realloc(*texts, nc * sizeof *nt);
            if (!nt) { rc = cli_errorf("out of memory"); break; }
            *texts = nt;
            *cap = nc;
        }
        if (!((*texts)[*n] = strdup(line))) { rc = cli_errorf("out of memory"); break; }
        (*n)++;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int cmd_embed_text(int argc, char **argv) {
    const int n_opts = (int)(sizeof text_opts / sizeof text_opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, text_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip embed-text -m MODEL [-o OUT.npy] [--file F] [options] TEXT...",
                       "Embeds texts: the positional TEXTs, then the lines of each --file, in that order.\n"
                       "Without -o: one JSON array per text on stdout; row i of OUT.npy is text i.",
                       text_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    int batch, threads;
    if (parse_count(&a, "batch", 32, 1, &batch) || parse_count(&a, "threads", 0, 0, &threads)) {
        cli_args_free(&a);
        return 2;
    }
    char **texts = NULL;
    size_t n = 0, cap = 0;
    mc_model *model = NULL;
    mc_context *ctx = NULL;
    float *emb = NULL;
    for (int i = 0; i < a.n_pos && !rc; i++) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nt = realloc(texts, nc * sizeof *nt);
            if (!nt) { rc = cli_errorf("out of memory"); break; }
            texts = nt;
            cap = nc;
        }
        if (!(texts[n] = strdup(a.pos[i]))) rc = cli_errorf("out of memory");
        else n++;
    }
    const char **files;
    int nf = cli_get_all(&a, "file", &files);
    for (int i = 0; i < nf && !rc; i++) rc = read_lines(files[i], &texts, &n, &cap);
    if (rc) goto out;
    if (n == 0) { rc = cli_errorf("embed-text: no texts given (see --help)"); goto out; }
    cli_model_opts mo = {cli_get(&a, "model"), cli_get(&a, "config"), cli_get(&a, "vocab"), 0, 1, 1, cli_get(&a, "weights")};
    if ((rc = cli_model_load(&mo, &model, NULL, 0, NULL))) goto out;
    mc_model_info info;
    mc_model_get_info(model, &info);
    const mc_tokenizer *tok = mc_model_tokenizer(model);
    if (!tok) { rc = cli_errorf("the model has no tokenizer (see --vocab)"); goto out; }
    if ((rc = cli_context_new(model, threads, batch, &ctx))) goto out;
    emb = malloc(n * (size_t)info.embed_dim * sizeof *emb);
    if (!emb) { rc = cli_errorf("out of memory"); goto out; }
    if ((rc = cli_embed_texts(ctx, tok, info.context_length, info.embed_dim, (const char *const *)texts, n,
                              batch, !cli_has(&a, "no-normalize"), emb)))
        goto out;
    const char *outp = cli_get(&a, "output");
    if (outp) {
        rc = write_npy(outp, emb, n, (size_t)info.embed_dim);
    } else {
        print_rows_json(stdout, emb, n, (size_t)info.embed_dim);
        if (fflush(stdout) != 0) rc = cli_errorf("cannot write to stdout");
    }
out:
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(emb);
    mc_context_free(ctx);
    mc_model_free(model);
    cli_args_free(&a);
    return rc;
}
