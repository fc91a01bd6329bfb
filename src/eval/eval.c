/*
 * eval/eval.c - zero-shot classification, image-text retrieval and their
 * figures (see eval.h; the definitions in docs/eval.md).
 *
 * Both evaluations stream their images through the same two-batch pipeline:
 * while the calling thread encodes one batch, decode threads decode the next
 * (from files, or from the bytes of shard members), so that at most two
 * batches of pixels are held at a time.  Zero-shot ranks each batch against
 * the classifier as soon as it is encoded; retrieval keeps the N image and N
 * caption embeddings and ranks them at the end, a block of rows at a time.
 */
#include "eval/eval.h"

#include "data/shard.h"
#include "kernels/kernels.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

mc_eval_params mc_eval_default_params(void) {
    mc_eval_params p;
    memset(&p, 0, sizeof p);
    p.batch = 32;
    p.n_threads = 0;
    p.decode_threads = 2;
    p.strict = 0;
    return p;
}

void mc_eval_results_init(mc_eval_results *r) {
    memset(r, 0, sizeof *r);
    r->epoch = -1;
}

static mc_status check_params(const mc_eval_params *p, mc_error *err) {
    if (p->batch < 1) return mc_fail(err, MC_ERR_INVALID_ARG, "eval: batch must be at least 1 (got %d)", p->batch);
    if (p->n_threads < 0) return mc_fail(err, MC_ERR_INVALID_ARG, "eval: thread count must be >= 0 (got %d)", p->n_threads);
    if (p->decode_threads < 0 || p->decode_threads > MC_EVAL_MAX_DECODE_THREADS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "eval: decode threads must be 0..%d (got %d)",
                       MC_EVAL_MAX_DECODE_THREADS, p->decode_threads);
    return MC_OK;
}

static mc_status report(const mc_eval_params *p, const char *stage, int64_t done, int64_t total, mc_error *err) {
    if (p->progress && p->progress(p->progress_user, stage, done, total))
        return mc_fail(err, MC_ERR_INVALID_ARG, "evaluation cancelled (%s, %lld done)", stage, (long long)done);
    return MC_OK;
}

/* ================================================================ strings */

void mc_eval_strings_free(char **s, size_t n) {
    if (!s) return;
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

typedef struct strvec {
    char **s;
    size_t n, cap;
} strvec;

static int sv_push(strvec *v, char *s) {   /* takes s; 0 or -1 (s freed) */
    if (!s) return -1;
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 16;
        char **ns = nc > SIZE_MAX / sizeof *ns ? NULL : realloc(v->s, nc * sizeof *ns);
        if (!ns) { free(s); return -1; }
        v->s = ns;
        v->cap = nc;
    }
    v->s[v->n++] = s;
    return 0;
}

static char *str_ndup(const char *s, size_t len) {
    char *c = malloc(len + 1);
    if (!c) return NULL;
    memcpy(c, s, len);
    c[len] = 0;
    return c;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The non-empty lines of a text file, surrounding blanks trimmed. */
static mc_status read_lines(const char *path, const char *what, strvec *out, mc_error *err) {
    char *buf;
    size_t len;
    mc_status st = mc_file_read_all(path, (size_t)64 << 20, &buf, &len, err);
    if (st != MC_OK) {
        mc_error_prefix(err, "%s file", what);
        return st;
    }
    if (memchr(buf, 0, len)) {
        free(buf);
        return mc_fail(err, MC_ERR_FORMAT, "%s: %s file holds a NUL byte (expected text, one entry a line)", path, what);
    }
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        size_t a = i, b = e;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r')) b--;
        if (b > a && sv_push(out, str_ndup(buf + a, b - a))) {
            free(buf);
            return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
        }
        i = e + 1;
    }
    free(buf);
    return MC_OK;
}

/* ============================================================== templates */

static const char *const default_templates[] = {
    "a photo of a {}.",
    "a picture showing a {}.",
    "an image of the {}, seen up close.",
    "a {} in a photograph.",
    "a snapshot with a {} in it.",
    "a sketch that shows a {}.",
};

const char *const *mc_eval_default_templates(size_t *n) {
    *n = sizeof default_templates / sizeof default_templates[0];
    return default_templates;
}

static size_t placeholder_at(const char *p) {   /* length of a placeholder at p, or 0 */
    if (p[0] == '{' && p[1] == '}') return 2;
    if (p[0] == '{' && p[1] == 'c' && p[2] == '}') return 3;
    return 0;
}

static int has_placeholder(const char *t) {
    for (; *t; t++)
        if (placeholder_at(t)) return 1;
    return 0;
}

mc_status mc_eval_templates_load(const char *path, char ***out, size_t *n, mc_error *err) {
    *out = NULL;
    *n = 0;
    strvec v = {0};
    mc_status st = read_lines(path, "templates", &v, err);
    if (st == MC_OK && v.n == 0)
        st = mc_fail(err, MC_ERR_FORMAT, "%s: no templates (one a line, with {} for the class name)", path);
    for (size_t i = 0; st == MC_OK && i < v.n; i++)
        if (!has_placeholder(v.s[i]))
            st = mc_fail(err, MC_ERR_FORMAT, "%s: template %zu '%s' has no {} or {c} for the class name",
                         path, i + 1, v.s[i]);
    if (st != MC_OK) {
        mc_eval_strings_free(v.s, v.n);
        return st;
    }
    *out = v.s;
    *n = v.n;
    return MC_OK;
}

/* ============================================================ ImageFolder */

static int has_image_ext(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"};
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    int slash = dl && dir[dl - 1] == '/';
    if (dl > SIZE_MAX - nl - 2) return NULL;
    char *p = malloc(dl + nl + 2);
    if (!p) return NULL;
    memcpy(p, dir, dl);
    if (!slash) p[dl++] = '/';
    memcpy(p + dl, name, nl + 1);
    return p;
}

#define WALK_MAX_DEPTH 32

/* Appends the image files under dir (recursively, links followed) to files. */
static mc_status walk_images(const char *dir, int depth, strvec *files, mc_error *err) {
    if (depth > WALK_MAX_DEPTH)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: folders nested deeper than %d (a symbolic link loop?)",
                       dir, WALK_MAX_DEPTH);
    DIR *d = opendir(dir);
    if (!d) return mc_fail(err, MC_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    mc_status st = MC_OK;
    strvec subdirs = {0};
    struct dirent *e;
    while (st == MC_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = path_join(dir, e->d_name);
        if (!p) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
        struct stat sb;
        if (stat(p, &sb) != 0) {   /* a dangling link: not an image torchvision would list */
            free(p);
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            if (sv_push(&subdirs, p)) st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
        } else if (S_ISREG(sb.st_mode) && has_image_ext(e->d_name)) {
            if (sv_push(files, p)) st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
        } else {
            free(p);
        }
    }
    closedir(d);
    for (size_t i = 0; st == MC_OK && i < subdirs.n; i++) st = walk_images(subdirs.s[i], depth + 1, files, err);
    mc_eval_strings_free(subdirs.s, subdirs.n);
    return st;
}

void mc_imagefolder_free(mc_imagefolder *f) {
    if (!f) return;
    mc_eval_strings_free(f->class_dirs, f->n_classes);
    mc_eval_strings_free(f->class_names, f->n_classes);
    mc_eval_strings_free(f->paths, f->n_images);
    free(f->labels);
    memset(f, 0, sizeof *f);
}

mc_status mc_imagefolder_scan(const char *root, const char *classnames_path, mc_imagefolder *out,
                              mc_error *err) {
    memset(out, 0, sizeof *out);
    if (!root || !*root) return mc_fail(err, MC_ERR_INVALID_ARG, "ImageFolder: no folder given");
    struct stat sb;
    if (stat(root, &sb) != 0)
        return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no such folder (ImageFolder: ROOT/CLASS/IMAGE)", root);
    if (!S_ISDIR(sb.st_mode))
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: not a folder (ImageFolder: ROOT/CLASS/IMAGE)", root);
    DIR *d = opendir(root);
    if (!d) return mc_fail(err, MC_ERR_IO, "%s: cannot open folder: %s", root, strerror(errno));
    strvec classes = {0}, names = {0}, files = {0};
    mc_status st = MC_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = path_join(root, e->d_name);
        if (!p) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
        int is_dir = stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
        free(p);
        if (is_dir && sv_push(&classes, strdup(e->d_name))) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
    }
    closedir(d);
    if (st == MC_OK && classes.n == 0)
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: no class folders (ImageFolder: one sub-folder of images per class)", root);
    if (st == MC_OK) qsort(classes.s, classes.n, sizeof *classes.s, cmp_str);
    if (st == MC_OK && classnames_path) {
        st = read_lines(classnames_path, "class names", &names, err);
        if (st == MC_OK && names.n != classes.n)
            st = mc_fail(err, MC_ERR_INVALID_ARG,
                         "%s: %zu class names, but %s has %zu class folders (one name a line, in the sorted "
                         "order of the folders)", classnames_path, names.n, root, classes.n);
    } else if (st == MC_OK) {
        for (size_t c = 0; c < classes.n; c++) {
            char *n = strdup(classes.s[c]);
            if (sv_push(&names, n)) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
            for (; *n; n++)
                if (*n == '_') *n = ' ';
        }
    }
    int64_t *labels = NULL;
    size_t lab_cap = 0;
    for (size_t c = 0; st == MC_OK && c < classes.n; c++) {
        char *dir = path_join(root, classes.s[c]);
        if (!dir) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
        size_t first = files.n;
        st = walk_images(dir, 1, &files, err);
        if (st == MC_OK && files.n == first)
            st = mc_fail(err, MC_ERR_NOT_FOUND,
                         "%s: class folder '%s' holds no images (.jpg, .jpeg, .png, .webp, ...); "
                         "ImageFolder needs at least one per class", dir, classes.s[c]);
        free(dir);
        if (st != MC_OK) break;
        qsort(files.s + first, files.n - first, sizeof *files.s, cmp_str);
        if (files.n > lab_cap) {
            size_t nc = files.cap;
            int64_t *nl = mc_malloc_array(nc, sizeof *nl);
            if (!nl) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
            if (labels) memcpy(nl, labels, first * sizeof *nl);
            free(labels);
            labels = nl;
            lab_cap = nc;
        }
        for (size_t i = first; i < files.n; i++) labels[i] = (int64_t)c;
    }
    if (st != MC_OK) {
        mc_eval_strings_free(classes.s, classes.n);
        mc_eval_strings_free(names.s, names.n);
        mc_eval_strings_free(files.s, files.n);
        free(labels);
        return st;
    }
    out->n_classes = classes.n;
    out->class_dirs = classes.s;
    out->class_names = names.s;
    out->n_images = files.n;
    out->paths = files.s;
    out->labels = labels;
    return MC_OK;
}

/* ================================================================ ranking */

static double dot_d(const float *a, const float *b, int d) {
    double s = 0;
    for (int k = 0; k < d; k++) s += (double)a[k] * (double)b[k];
    return s;
}

mc_status mc_eval_ranks(const float *q, int64_t nq, const float *keys, int64_t nk, int d,
                        const int64_t *target, int n_threads, int64_t *ranks_out, mc_error *err) {
    if (nq < 0 || nk < 1 || d < 1 || (nq && (!q || !ranks_out)) || !keys)
        return mc_fail(err, MC_ERR_INVALID_ARG, "eval ranks: bad arguments (%lld queries, %lld keys, dim %d)",
                       (long long)nq, (long long)nk, d);
    if (nk > INT_MAX) return mc_fail(err, MC_ERR_UNSUPPORTED, "eval ranks: %lld keys (at most %d)", (long long)nk, INT_MAX);
    if (nq == 0) return MC_OK;
    for (int64_t i = 0; target && i < nq; i++)
        if (target[i] < 0 || target[i] >= nk)
            return mc_fail(err, MC_ERR_INVALID_ARG, "eval ranks: query %lld targets key %lld of %lld",
                           (long long)i, (long long)target[i], (long long)nk);
    if (!target && nq > nk)
        return mc_fail(err, MC_ERR_INVALID_ARG, "eval ranks: %lld queries matched to %lld keys", (long long)nq, (long long)nk);
    /* rows per block: about 16 M scores, at least one row */
    int64_t rows = ((int64_t)1 << 24) / nk;
    if (rows < 1) rows = 1;
    if (rows > nq) rows = nq;
    float *s = mc_malloc_array((size_t)rows * (size_t)nk, sizeof *s);
    if (!s) return mc_fail(err, MC_ERR_NOMEM, "eval ranks: out of memory (%lld x %lld scores)", (long long)rows, (long long)nk);
    double kmax = 0;
    for (int64_t j = 0; j < nk; j++) {
        double n2 = dot_d(keys + j * (size_t)d, keys + j * (size_t)d, d);
        if (n2 > kmax) kmax = n2;
    }
    kmax = sqrt(kmax);
    int prev = mc_kernels_set_local_threads(n_threads > 0 ? n_threads : -1);
    for (int64_t r0 = 0; r0 < nq; r0 += rows) {
        int m = (int)(nq - r0 < rows ? nq - r0 : rows);
        mc_gemm(0, 1, m, (int)nk, d, 1.0f, q + r0 * (size_t)d, d, keys, d, 0.0f, s, (int)nk);
        for (int r = 0; r < m; r++) {
            int64_t i = r0 + r, t = target ? target[i] : i;
            const float *qi = q + i * (size_t)d, *row = s + (size_t)r * (size_t)nk;
            float st = row[t];
            if (!isfinite(st)) {
                ranks_out[i] = nk;
                continue;
            }
            /* |fl(a.b) - a.b| <= d u |a| |b| for any order of the d products
             * (u = 2^-24): two scores within twice that of each other are
             * compared exactly (in double) */
            double margin = 2.0 * (d + 4) * 0x1p-24 * sqrt(dot_d(qi, qi, d)) * kmax;
            double sd_t = 0;
            int have_t = 0;
            int64_t above = 0;
            for (int64_t j = 0; j < nk; j++) {
                if (j == t) continue;
                double diff = (double)row[j] - (double)st;
                if (diff > margin) {
                    above++;
                } else if (diff >= -margin) {
                    if (!have_t) { sd_t = dot_d(qi, keys + t * (size_t)d, d); have_t = 1; }
                    double sd_j = dot_d(qi, keys + j * (size_t)d, d);
                    if (sd_j > sd_t || (sd_j == sd_t && j < t)) above++;
                }
            }
            ranks_out[i] = 1 + above;
        }
    }
    mc_kernels_set_local_threads(prev);
    free(s);
    return MC_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

mc_status mc_eval_rank_metrics(const int64_t *ranks, int64_t n, mc_rank_metrics *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    if (n < 1 || !ranks) return mc_fail(err, MC_ERR_INVALID_ARG, "eval metrics: no ranks");
    int64_t *sorted = mc_malloc_array((size_t)n, sizeof *sorted);
    if (!sorted) return mc_fail(err, MC_ERR_NOMEM, "eval metrics: out of memory");
    memcpy(sorted, ranks, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_i64);
    double sum = 0;
    int64_t w1 = 0, w5 = 0, w10 = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)sorted[i];
        w1 += sorted[i] <= 1;
        w5 += sorted[i] <= 5;
        w10 += sorted[i] <= 10;
    }
    out->mean_rank = sum / (double)n;
    out->median_rank = n % 2 ? (double)sorted[n / 2]
                             : floor(((double)sorted[n / 2 - 1] + (double)sorted[n / 2]) / 2.0);
    out->r1 = (double)w1 / (double)n;
    out->r5 = (double)w5 / (double)n;
    out->r10 = (double)w10 / (double)n;
    free(sorted);
    return MC_OK;
}

/* ============================================================== pipeline */

/* One image of a batch: a file, or encoded bytes from a shard. */
typedef struct ev_item {
    const char *path;         /* file to decode (not owned), or NULL */
    uint8_t *data;            /* encoded bytes (owned) when path is NULL */
    size_t size;
    char *what;               /* "SHARD: KEY" for messages (owned), or NULL: path */
    int64_t label;            /* class index (zero-shot) */
    int ok;
    mc_error err;
} ev_item;

typedef struct ev_batch {
    ev_item *items;           /* cap slots */
    size_t n, cap;
    float *pixels;            /* cap x plane */
    int32_t *tokens;          /* cap x context (retrieval), or NULL */
    const mc_preprocess_params *pp;
    size_t plane;
    pthread_mutex_t lock;
    size_t next;              /* next item to decode */
    pthread_t th[MC_EVAL_MAX_DECODE_THREADS];
    int n_th;
} ev_batch;

static const char *item_what(const ev_item *it) { return it->what ? it->what : it->path; }

static void decode_item(ev_batch *b, size_t k) {
    ev_item *it = &b->items[k];
    float *out = b->pixels + k * b->plane;
    mc_error_clear(&it->err);
    if (it->path) {
        it->ok = mc_image_preprocess_file(it->path, b->pp, out, &it->err) == MC_OK;
        return;
    }
    mc_image img, res;
    it->ok = 0;
    if (mc_image_load_memory(it->data, it->size, b->pp->apply_exif, &img, &it->err) != MC_OK) return;
    mc_status st = mc_image_resize_crop(&img, b->pp->size, b->pp->interp, b->pp->resize_mode, &res, &it->err);
    mc_image_free(&img);
    if (st != MC_OK) return;
    mc_image_to_tensor(&res, b->pp->mean, b->pp->std, out);
    mc_image_free(&res);
    it->ok = 1;
}

static void *decode_worker(void *arg) {
    ev_batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        size_t k = b->next++;
        pthread_mutex_unlock(&b->lock);
        if (k >= b->n) break;
        decode_item(b, k);
    }
    return NULL;
}

static void decode_start(ev_batch *b, int threads) {
    b->next = 0;
    b->n_th = 0;
    if ((size_t)threads > b->n) threads = (int)b->n;
    for (int t = 0; t < threads; t++)
        if (pthread_create(&b->th[b->n_th], NULL, decode_worker, b) == 0) b->n_th++;
    if (b->n_th == 0) decode_worker(b);   /* no threads (or none could start): decode here */
}

static void decode_wait(ev_batch *b) {
    for (int t = 0; t < b->n_th; t++) pthread_join(b->th[t], NULL);
    b->n_th = 0;
}

static void batch_clear(ev_batch *b) {
    for (size_t k = 0; k < b->n; k++) {
        free(b->items[k].data);
        free(b->items[k].what);
        memset(&b->items[k], 0, sizeof b->items[k]);
    }
    b->n = 0;
}

static mc_status batch_init(ev_batch *b, size_t cap, const mc_preprocess_params *pp, int context, mc_error *err) {
    memset(b, 0, sizeof *b);
    b->cap = cap;
    b->pp = pp;
    b->plane = (size_t)3 * (size_t)pp->size * (size_t)pp->size;
    b->items = mc_calloc_array(cap, sizeof *b->items);
    size_t np;
    b->pixels = mc_size_mul(cap, b->plane, &np) ? mc_malloc_array(np, sizeof *b->pixels) : NULL;
    if (context > 0) b->tokens = mc_malloc_array(cap * (size_t)context, sizeof *b->tokens);
    pthread_mutex_init(&b->lock, NULL);
    if (!b->items || !b->pixels || (context > 0 && !b->tokens))
        return mc_fail(err, MC_ERR_NOMEM, "eval: out of memory for a batch of %zu images of %d px", cap, pp->size);
    return MC_OK;
}

static void batch_free(ev_batch *b) {
    if (b->items) batch_clear(b);
    free(b->items);
    free(b->pixels);
    free(b->tokens);
    pthread_mutex_destroy(&b->lock);
}

typedef mc_status (*ev_fill_fn)(void *user, ev_batch *b, mc_error *err);   /* b->n = 0 at the end */
typedef mc_status (*ev_use_fn)(void *user, ev_batch *b, mc_error *err);

/* Fills the next batch and decodes it in the background while the calling
 * thread encodes the current one. */
static mc_status run_pipeline(ev_batch bufs[2], int decode_threads, ev_fill_fn fill, ev_use_fn use, void *user,
                              mc_error *err) {
    int cur = 0;
    mc_status st = fill(user, &bufs[0], err);
    if (st != MC_OK || bufs[0].n == 0) return st;
    decode_start(&bufs[0], decode_threads);
    for (;;) {
        ev_batch *b = &bufs[cur], *nb = &bufs[cur ^ 1];
        st = fill(user, nb, err);
        decode_wait(b);
        if (st != MC_OK) return st;
        if (nb->n) decode_start(nb, decode_threads);
        st = use(user, b, err);
        batch_clear(b);
        if (st != MC_OK) {
            if (nb->n) decode_wait(nb);
            return st;
        }
        if (nb->n == 0) return MC_OK;
        cur ^= 1;
    }
}

/* Moves the decoded images of b to the front (pixels and tokens); reports or
 * fails on the others.  Returns the count in *good. */
static mc_status batch_compact(ev_batch *b, const mc_eval_params *p, int context, int64_t *n_skipped,
                               size_t *good, mc_error *err) {
    size_t g = 0;
    for (size_t k = 0; k < b->n; k++) {
        ev_item *it = &b->items[k];
        if (!it->ok) {
            const char *what = item_what(it);
            const char *msg = it->err.message[0] ? it->err.message : "cannot decode";
            if (p->strict) {
                if (strstr(msg, what)) return mc_fail(err, it->err.status ? it->err.status : MC_ERR_IMAGE, "%s", msg);
                return mc_fail(err, it->err.status ? it->err.status : MC_ERR_IMAGE, "%s: %s", what, msg);
            }
            (*n_skipped)++;
            if (p->on_skip) p->on_skip(p->skip_user, what, &it->err);
            continue;
        }
        if (g != k) {
            memmove(b->pixels + g * b->plane, b->pixels + k * b->plane, b->plane * sizeof *b->pixels);
            if (context > 0)
                memmove(b->tokens + g * (size_t)context, b->tokens + k * (size_t)context, (size_t)context * sizeof *b->tokens);
            b->items[g].label = it->label;
        }
        g++;
    }
    *good = g;
    return MC_OK;
}

static mc_status ctx_error(mc_context *ctx, mc_status st, mc_error *err) {
    const mc_error *e = mc_context_last_error(ctx);
    if (err && e) *err = *e;
    if (err && err->status == MC_OK) err->status = st;
    return st ? st : MC_ERR_INTERNAL;
}

static mc_status make_context(const mc_model *model, const mc_eval_params *p, mc_context **ctx, mc_error *err) {
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = p->n_threads;
    cp.max_batch = p->batch;
    return mc_context_new(model, &cp, ctx, err);
}

static mc_status model_tokenizer(const mc_model *model, const mc_tokenizer **tok, mc_error *err) {
    *tok = mc_model_tokenizer(model);
    if (!*tok)
        return mc_fail(err, MC_ERR_INVALID_ARG,
                       "eval: the model has no tokenizer (load it with its text tower and vocabulary)");
    return MC_OK;
}

/* ============================================================ classifier */

static mc_status build_classifier(mc_context *ctx, const mc_tokenizer *tok, const mc_model_info *info,
                                  const char *const *names, size_t n_classes, const char *const *templates,
                                  size_t n_templates, const mc_eval_params *p, float *out, mc_error *err) {
    if (n_classes < 1 || n_templates < 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "eval classifier: %zu classes, %zu templates", n_classes, n_templates);
    size_t total;
    if (!mc_size_mul(n_classes, n_templates, &total))
        return mc_fail(err, MC_ERR_NOMEM, "eval classifier: too many prompts");
    const int L = info->context_length, D = info->embed_dim;
    size_t B = (size_t)p->batch;
    int32_t *ids = mc_malloc_array(B * (size_t)L, sizeof *ids);
    float *emb = mc_malloc_array(B * (size_t)D, sizeof *emb);
    double *acc = mc_calloc_array(n_classes * (size_t)D, sizeof *acc);
    mc_status st = MC_OK;
    if (!ids || !emb || !acc) st = mc_fail(err, MC_ERR_NOMEM, "eval classifier: out of memory (%zu classes)", n_classes);
    for (size_t first = 0; st == MC_OK && first < total; first += B) {
        size_t cnt = total - first < B ? total - first : B;
        for (size_t k = 0; st == MC_OK && k < cnt; k++) {
            size_t c = (first + k) / n_templates, t = (first + k) % n_templates;
            char *prompt = mc_fill_template(templates[t], names[c]);
            if (!prompt) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
            st = mc_tokenizer_encode(tok, prompt, L, ids + k * (size_t)L, err);
            if (st != MC_OK) mc_error_prefix(err, "class %zu '%s', template '%s'", c, names[c], templates[t]);
            free(prompt);
        }
        if (st != MC_OK) break;
        if ((st = mc_encode_text(ctx, ids, (int)cnt, 1, emb)) != MC_OK) { st = ctx_error(ctx, st, err); break; }
        for (size_t k = 0; k < cnt; k++) {
            double *a = acc + ((first + k) / n_templates) * (size_t)D;
            const float *e = emb + k * (size_t)D;
            for (int j = 0; j < D; j++) a[j] += (double)e[j];
        }
        st = report(p, "classifier", (int64_t)(first + cnt), (int64_t)total, err);
    }
    for (size_t c = 0; st == MC_OK && c < n_classes; c++) {
        double *a = acc + c * (size_t)D, nrm = 0;
        for (int j = 0; j < D; j++) {
            a[j] /= (double)n_templates;
            nrm += a[j] * a[j];
        }
        nrm = sqrt(nrm);
        if (nrm < 1e-12) nrm = 1e-12;
        for (int j = 0; j < D; j++) out[c * (size_t)D + j] = (float)(a[j] / nrm);
    }
    free(ids);
    free(emb);
    free(acc);
    return st;
}

mc_status mc_eval_classifier(const mc_model *model, const char *const *class_names, size_t n_classes,
                             const char *const *templates, size_t n_templates,
                             const mc_eval_params *params, float *out, mc_error *err) {
    mc_eval_params p = params ? *params : mc_eval_default_params();
    mc_status st = check_params(&p, err);
    if (st != MC_OK) return st;
    if (!model || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "eval classifier: no model or output");
    const mc_tokenizer *tok;
    if ((st = model_tokenizer(model, &tok, err)) != MC_OK) return st;
    mc_model_info info;
    mc_model_get_info(model, &info);
    mc_context *ctx;
    if ((st = make_context(model, &p, &ctx, err)) != MC_OK) return st;
    st = build_classifier(ctx, tok, &info, class_names, n_classes, templates, n_templates, &p, out, err);
    mc_context_free(ctx);
    return st;
}

/* ============================================================= zero-shot */

typedef struct zs_run {
    const mc_eval_params *p;
    const mc_imagefolder *f;
    mc_context *ctx;
    const float *cls;         /* [C, D] */
    int D, k;
    size_t next;              /* next image of the folder */
    float *emb;               /* [batch, D] */
    int64_t *labels, *ranks;  /* [batch] */
    mc_zeroshot_result *res;
    int64_t handled;
} zs_run;

static mc_status zs_fill(void *user, ev_batch *b, mc_error *err) {
    zs_run *z = user;
    while (b->n < b->cap && z->next < z->f->n_images) {
        ev_item *it = &b->items[b->n++];
        it->path = z->f->paths[z->next];
        it->label = z->f->labels[z->next];
        z->next++;
    }
    return MC_OK;
}

static mc_status zs_use(void *user, ev_batch *b, mc_error *err) {
    zs_run *z = user;
    size_t g;
    size_t n = b->n;
    mc_status st = batch_compact(b, z->p, 0, &z->res->n_skipped, &g, err);
    if (st != MC_OK) return st;
    if (g) {
        if ((st = mc_encode_image(z->ctx, b->pixels, (int)g, 1, z->emb)) != MC_OK) return ctx_error(z->ctx, st, err);
        for (size_t k = 0; k < g; k++) z->labels[k] = b->items[k].label;
        st = mc_eval_ranks(z->emb, (int64_t)g, z->cls, z->res->n_classes, z->D, z->labels, z->p->n_threads,
                           z->ranks, err);
        if (st != MC_OK) return st;
        for (size_t k = 0; k < g; k++) {
            z->res->top1_correct += z->ranks[k] <= 1;
            z->res->top5_correct += z->ranks[k] <= z->k;
        }
        z->res->n_images += (int64_t)g;
    }
    z->handled += (int64_t)n;
    return report(z->p, "images", z->handled, (int64_t)z->f->n_images, err);
}

mc_status mc_eval_zeroshot(const mc_model *model, const char *root, const char *classnames_path,
                           const char *templates_path, const mc_eval_params *params,
                           mc_zeroshot_result *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    mc_eval_params p = params ? *params : mc_eval_default_params();
    mc_status st = check_params(&p, err);
    if (st != MC_OK) return st;
    if (!model) return mc_fail(err, MC_ERR_INVALID_ARG, "eval zero-shot: no model");
    const mc_tokenizer *tok;
    if ((st = model_tokenizer(model, &tok, err)) != MC_OK) return st;
    mc_model_info info;
    mc_model_get_info(model, &info);
    const mc_preprocess_params *pp = p.preprocess ? p.preprocess : &info.preprocess;

    mc_imagefolder f;
    char **tmpl = NULL;
    size_t n_tmpl = 0;
    const char *const *templates;
    if ((st = mc_imagefolder_scan(root, classnames_path, &f, err)) != MC_OK) return st;
    if (templates_path) {
        if ((st = mc_eval_templates_load(templates_path, &tmpl, &n_tmpl, err)) != MC_OK) {
            mc_imagefolder_free(&f);
            return st;
        }
        templates = (const char *const *)tmpl;
    } else {
        templates = mc_eval_default_templates(&n_tmpl);
    }
    const size_t D = (size_t)info.embed_dim, B = (size_t)p.batch;
    mc_context *ctx = NULL;
    ev_batch bufs[2];
    memset(bufs, 0, sizeof bufs);
    zs_run z;
    memset(&z, 0, sizeof z);
    float *cls = mc_malloc_array(f.n_classes * D, sizeof *cls);
    z.emb = mc_malloc_array(B * D, sizeof *z.emb);
    z.labels = mc_malloc_array(B, sizeof *z.labels);
    z.ranks = mc_malloc_array(B, sizeof *z.ranks);
    if (!cls || !z.emb || !z.labels || !z.ranks) st = mc_fail(err, MC_ERR_NOMEM, "eval zero-shot: out of memory");
    if (st == MC_OK) st = make_context(model, &p, &ctx, err);
    if (st == MC_OK)
        st = build_classifier(ctx, tok, &info, (const char *const *)f.class_names, f.n_classes, templates, n_tmpl,
                              &p, cls, err);
    if (st == MC_OK) st = batch_init(&bufs[0], B, pp, 0, err);
    if (st == MC_OK) st = batch_init(&bufs[1], B, pp, 0, err);
    if (st == MC_OK) {
        out->n_classes = (int64_t)f.n_classes;
        out->n_templates = (int64_t)n_tmpl;
        out->top_k = f.n_classes < 5 ? (int)f.n_classes : 5;
        z.p = &p;
        z.f = &f;
        z.ctx = ctx;
        z.cls = cls;
        z.D = (int)D;
        z.k = out->top_k;
        z.res = out;
        st = run_pipeline(bufs, p.decode_threads, zs_fill, zs_use, &z, err);
    }
    if (st == MC_OK && out->n_images == 0)
        st = mc_fail(err, MC_ERR_IMAGE, "%s: none of its %zu images could be decoded", root, f.n_images);
    if (st == MC_OK) {
        out->top1 = (double)out->top1_correct / (double)out->n_images;
        out->top5 = (double)out->top5_correct / (double)out->n_images;
        out->done = 1;
    }
    batch_free(&bufs[0]);
    batch_free(&bufs[1]);
    mc_context_free(ctx);
    free(cls);
    free(z.emb);
    free(z.labels);
    free(z.ranks);
    mc_eval_strings_free(tmpl, n_tmpl);
    mc_imagefolder_free(&f);
    if (st != MC_OK) {
        int64_t skipped = out->n_skipped;
        memset(out, 0, sizeof *out);
        out->n_skipped = skipped;
    }
    return st;
}

/* ============================================================= retrieval */

typedef struct rt_run {
    const mc_eval_params *p;
    const mc_tokenizer *tok;
    mc_context *ctx;
    int L, D;
    char **shards;
    size_t n_shards, shard;   /* the shard being read */
    mc_shard_reader *reader;
    uint64_t reader_skipped;  /* the reader's skips already counted */
    float *img, *txt;         /* [cap, D] each */
    size_t n, cap;
    float *emb;               /* [batch, D] */
    mc_retrieval_result *res;
    int64_t handled;
} rt_run;

static const char *const image_exts[] = {"jpg", "jpeg", "png", "webp"};

/* Counts (and reports) the samples the shard reader left out since the last call. */
static void rt_reader_skips(rt_run *r) {
    const mc_shard_stats *s = mc_shard_reader_stats(r->reader);
    while (r->reader_skipped < s->skipped) {
        r->reader_skipped++;
        r->res->n_skipped++;
        if (r->p->on_skip) r->p->on_skip(r->p->skip_user, r->shards[r->shard], &s->last_skip);
    }
}

/* A sample that cannot be used: an error when strict, else counted. */
static mc_status rt_skip(rt_run *r, const mc_wds_sample *s, mc_status why, const char *fmt, const char *detail,
                         mc_error *err) {
    char what[1024];
    snprintf(what, sizeof what, "%s: %s", r->shards[r->shard], s->key);
    mc_error e;
    mc_fail(&e, why, fmt, detail);
    if (r->p->strict) return mc_fail(err, why, "%s: %s", what, e.message);
    r->res->n_skipped++;
    r->handled++;
    if (r->p->on_skip) r->p->on_skip(r->p->skip_user, what, &e);
    return MC_OK;
}

static mc_status rt_fill(void *user, ev_batch *b, mc_error *err) {
    rt_run *r = user;
    mc_status st;
    while (b->n < b->cap && r->shard < r->n_shards) {
        if (!r->reader) {
            mc_shard_params sp = mc_shard_default_params();
            sp.strict = r->p->strict;
            if ((st = mc_shard_open(r->shards[r->shard], &sp, &r->reader, err)) != MC_OK) return st;
            r->reader_skipped = 0;
        }
        mc_wds_sample *s;
        st = mc_shard_next_sample(r->reader, &s, err);
        if (st == MC_OK) rt_reader_skips(r);
        if (st != MC_OK) return st;
        if (!s) {
            mc_shard_close(r->reader);
            r->reader = NULL;
            r->shard++;
            continue;
        }
        mc_wds_member *img = NULL;
        for (size_t i = 0; !img && i < sizeof image_exts / sizeof image_exts[0]; i++)
            img = (mc_wds_member *)mc_wds_sample_get(s, image_exts[i]);
        const mc_wds_member *txt = mc_wds_sample_get(s, "txt");
        ev_item *it = &b->items[b->n];
        if (!img) {
            st = rt_skip(r, s, MC_ERR_NOT_FOUND, "no image member (%s)", ".jpg, .jpeg, .png or .webp", err);
        } else if (!txt) {
            st = rt_skip(r, s, MC_ERR_NOT_FOUND, "no caption member (%s)", ".txt", err);
        } else {
            mc_error e;
            mc_error_clear(&e);
            if (mc_tokenizer_encode_n(r->tok, (const char *)txt->data, txt->size, r->L,
                                      b->tokens + b->n * (size_t)r->L, &e) != MC_OK) {
                st = rt_skip(r, s, e.status, "caption: %s", e.message, err);
            } else {
                size_t wl = strlen(r->shards[r->shard]) + strlen(s->key) + 3;
                it->what = malloc(wl);
                if (!it->what) {
                    st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
                } else {
                    snprintf(it->what, wl, "%s: %s", r->shards[r->shard], s->key);
                    it->path = NULL;
                    it->data = img->data;   /* taken from the sample */
                    it->size = img->size;
                    img->data = NULL;
                    b->n++;
                }
            }
        }
        mc_wds_sample_free(s);
        if (st != MC_OK) return st;
    }
    return MC_OK;
}

static mc_status rt_grow(rt_run *r, size_t need, mc_error *err) {
    if (need <= r->cap) return MC_OK;
    size_t nc = r->cap ? r->cap : 1024;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return mc_fail(err, MC_ERR_NOMEM, "eval retrieval: too many samples");
        nc *= 2;
    }
    size_t bytes;
    if (!mc_size_mul(nc, (size_t)r->D * sizeof(float), &bytes)) return mc_fail(err, MC_ERR_NOMEM, "eval retrieval: too many samples");
    float *ni = realloc(r->img, bytes);
    if (!ni) return mc_fail(err, MC_ERR_NOMEM, "eval retrieval: out of memory (%zu samples)", nc);
    r->img = ni;
    float *nt = realloc(r->txt, bytes);
    if (!nt) return mc_fail(err, MC_ERR_NOMEM, "eval retrieval: out of memory (%zu samples)", nc);
    r->txt = nt;
    r->cap = nc;
    return MC_OK;
}

static mc_status rt_use(void *user, ev_batch *b, mc_error *err) {
    rt_run *r = user;
    size_t g, n = b->n;
    mc_status st = batch_compact(b, r->p, r->L, &r->res->n_skipped, &g, err);
    if (st != MC_OK) return st;
    if (g) {
        if ((st = rt_grow(r, r->n + g, err)) != MC_OK) return st;
        if ((st = mc_encode_image(r->ctx, b->pixels, (int)g, 1, r->img + r->n * (size_t)r->D)) != MC_OK)
            return ctx_error(r->ctx, st, err);
        if ((st = mc_encode_text(r->ctx, b->tokens, (int)g, 1, r->txt + r->n * (size_t)r->D)) != MC_OK)
            return ctx_error(r->ctx, st, err);
        r->n += g;
    }
    r->handled += (int64_t)n;
    return report(r->p, "retrieval", r->handled, -1, err);
}

/* ranks of n queries against n keys (the match of query i is key i), in
 * blocks of rows so that progress is reported */
static mc_status rt_ranks(const rt_run *r, const float *q, const float *k, int64_t *ranks, int64_t done_before,
                          mc_error *err) {
    int64_t n = (int64_t)r->n, step = 1024;
    int64_t *target = mc_malloc_array((size_t)step, sizeof *target);
    if (!target) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = MC_OK;
    for (int64_t i0 = 0; st == MC_OK && i0 < n; i0 += step) {
        int64_t m = n - i0 < step ? n - i0 : step;
        for (int64_t i = 0; i < m; i++) target[i] = i0 + i;
        st = mc_eval_ranks(q + i0 * (size_t)r->D, m, k, n, r->D, target, r->p->n_threads, ranks + i0, err);
        if (st == MC_OK) st = report(r->p, "ranks", done_before + i0 + m, 2 * n, err);
    }
    free(target);
    return st;
}

mc_status mc_eval_retrieval(const mc_model *model, const char *shards, const mc_eval_params *params,
                            mc_retrieval_result *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    mc_eval_params p = params ? *params : mc_eval_default_params();
    mc_status st = check_params(&p, err);
    if (st != MC_OK) return st;
    if (!model) return mc_fail(err, MC_ERR_INVALID_ARG, "eval retrieval: no model");
    if (!shards || !*shards) return mc_fail(err, MC_ERR_INVALID_ARG, "eval retrieval: no shards given");
    rt_run r;
    memset(&r, 0, sizeof r);
    if ((st = model_tokenizer(model, &r.tok, err)) != MC_OK) return st;
    mc_model_info info;
    mc_model_get_info(model, &info);
    const mc_preprocess_params *pp = p.preprocess ? p.preprocess : &info.preprocess;
    r.p = &p;
    r.L = info.context_length;
    r.D = info.embed_dim;
    r.res = out;
    if ((st = mc_shard_expand(shards, 0, &r.shards, &r.n_shards, err)) != MC_OK) return st;
    ev_batch bufs[2];
    memset(bufs, 0, sizeof bufs);
    int64_t *ranks = NULL;
    r.emb = NULL;
    if (r.n_shards == 0) st = mc_fail(err, MC_ERR_INVALID_ARG, "eval retrieval: '%s' names no shards", shards);
    if (st == MC_OK) st = make_context(model, &p, &r.ctx, err);
    if (st == MC_OK) st = batch_init(&bufs[0], (size_t)p.batch, pp, r.L, err);
    if (st == MC_OK) st = batch_init(&bufs[1], (size_t)p.batch, pp, r.L, err);
    if (st == MC_OK) st = run_pipeline(bufs, p.decode_threads, rt_fill, rt_use, &r, err);
    if (st == MC_OK && r.n == 0)
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: no sample with an image and a caption%s", shards,
                     out->n_skipped ? " could be used" : "");
    if (st == MC_OK && !(ranks = mc_malloc_array(r.n, sizeof *ranks)))
        st = mc_fail(err, MC_ERR_NOMEM, "eval retrieval: out of memory");
    if (st == MC_OK) st = rt_ranks(&r, r.img, r.txt, ranks, 0, err);
    if (st == MC_OK) st = mc_eval_rank_metrics(ranks, (int64_t)r.n, &out->image_to_text, err);
    if (st == MC_OK) st = rt_ranks(&r, r.txt, r.img, ranks, (int64_t)r.n, err);
    if (st == MC_OK) st = mc_eval_rank_metrics(ranks, (int64_t)r.n, &out->text_to_image, err);
    if (st == MC_OK) {
        out->n_samples = (int64_t)r.n;
        out->done = 1;
    }
    free(ranks);
    batch_free(&bufs[0]);
    batch_free(&bufs[1]);
    if (r.reader) mc_shard_close(r.reader);
    mc_shard_list_free(r.shards, r.n_shards);
    mc_context_free(r.ctx);
    free(r.img);
    free(r.txt);
    if (st != MC_OK) {
        int64_t skipped = out->n_skipped;
        memset(out, 0, sizeof *out);
        out->n_skipped = skipped;
    }
    return st;
}

/* ================================================================== JSON */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (len + 1 > b->cap - b->n) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc - b->n < len + 1) {
            if (nc > SIZE_MAX / 2) { b->oom = 1; return; }
            nc *= 2;
        }
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s) {
    sb_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_add(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_str(b, esc);
        } else {
            sb_add(b, (const char *)&c, 1);
        }
    }
    sb_str(b, "\"");
}

/* The shortest "%.Ng" that reads back as v (Python's repr for our values:
 * integral values keep a ".0"). */
static void fmt_double(char *buf, size_t cap, double v) {
    if (!isfinite(v)) {   /* not JSON: never produced by the evaluations */
        snprintf(buf, cap, "null");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, cap, "%.1f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void sb_key(sbuf *b, int *first, const char *prefix, const char *key) {
    if (!*first) sb_str(b, ", ");
    *first = 0;
    char k[256];
    snprintf(k, sizeof k, "%s%s", prefix, key);
    sb_json_string(b, k);
    sb_str(b, ": ");
}

static void sb_num(sbuf *b, int *first, const char *prefix, const char *key, double v) {
    char buf[64];
    sb_key(b, first, prefix, key);
    fmt_double(buf, sizeof buf, v);
    sb_str(b, buf);
}

static void sb_int(sbuf *b, int *first, const char *prefix, const char *key, int64_t v) {
    char buf[32];
    sb_key(b, first, prefix, key);
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    sb_str(b, buf);
}

static void sb_ranks(sbuf *b, int *first, const char *dir, const mc_rank_metrics *m) {
    sb_num(b, first, dir, "_mean_rank", m->mean_rank);
    sb_num(b, first, dir, "_median_rank", m->median_rank);
    sb_num(b, first, dir, "_R@1", m->r1);
    sb_num(b, first, dir, "_R@5", m->r5);
    sb_num(b, first, dir, "_R@10", m->r10);
}

mc_status mc_eval_results_json(const mc_eval_results *r, char **out, mc_error *err) {
    *out = NULL;
    if (!r) return mc_fail(err, MC_ERR_INVALID_ARG, "eval JSON: no results");
    const char *name = r->zeroshot_name ? r->zeroshot_name : "imagenet";
    if (strlen(name) > 100) return mc_fail(err, MC_ERR_INVALID_ARG, "eval JSON: zero-shot name too long");
    sbuf b = {0};
    int first = 1;
    sb_str(&b, "{");
    if (r->model) {
        sb_key(&b, &first, "", "model");
        sb_json_string(&b, r->model);
    }
    if (r->epoch >= 0) sb_int(&b, &first, "", "epoch", r->epoch);
    if (r->zeroshot.done) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s-zeroshot-val-", name);
        const mc_zeroshot_result *z = &r->zeroshot;
        sb_num(&b, &first, prefix, "top1", z->top1);
        sb_num(&b, &first, prefix, "top5", z->top5);
        sb_int(&b, &first, prefix, "num_samples", z->n_images);
        sb_int(&b, &first, prefix, "num_classes", z->n_classes);
        sb_int(&b, &first, prefix, "num_templates", z->n_templates);
        sb_int(&b, &first, prefix, "num_skipped", z->n_skipped);
    }
    if (r->retrieval.done) {
        sb_ranks(&b, &first, "image_to_text", &r->retrieval.image_to_text);
        sb_ranks(&b, &first, "text_to_image", &r->retrieval.text_to_image);
        sb_int(&b, &first, "", "num_samples", r->retrieval.n_samples);
        sb_int(&b, &first, "", "num_skipped", r->retrieval.n_skipped);
    }
    sb_str(&b, "}");
    if (b.oom) {
        free(b.s);
        return mc_fail(err, MC_ERR_NOMEM, "eval JSON: out of memory");
    }
    *out = b.s;
    return MC_OK;
}
