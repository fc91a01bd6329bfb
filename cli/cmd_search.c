/*
 * cmd_search.c - the 'search' command: a text or an image against a photo
 * index (mc_index_search, docs/search.md); the best matches with score and
 * path, optionally tagged by zero-shot classification (--labels), as text or
 * JSON.  --bench times the exact scan on random embeddings.
 */
#include "cli.h"
#include "embed.h"
#include "progress.h"
#include "core/json.h"
#include "kernels/threads.h"
#include "search/scan.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_TEMPLATE "a photo of a %s."

static const cli_opt opts[] = {
    {"db", 0, 1, 0, "FILE  the index ('mobileclip index')"},
    {"model", 'm', 1, 0, "MODEL  the model that encodes the query (default: the one the index was made with)"},
    {"image", 0, 1, 0, "FILE  search by this image instead of a text"},
    {"top", 'k', 1, 0, "K  results (default 10)"},
    {"json", 0, 0, 0, "one JSON object on stdout"},
    {"labels", 0, 1, 0, "A,B,C  tag each result with its best label by zero-shot classification"},
    {"labels-file", 0, 1, 0, "FILE  the labels, one a line"},
    {"threads", 't', 1, 0, "N  compute threads (default: one per core)"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    {"vocab", 0, 1, 0, "FILE  the BPE vocabulary (default: see 'mobileclip tokenize --help')"},
    CLI_WEIGHTS_OPT,
    {"bench", 0, 0, 0, "time the exact scan of --bench-rows random embeddings of --bench-dim (no index needed)"},
    {"bench-rows", 0, 1, 0, "N  rows for --bench (default 100000)"},
    {"bench-dim", 0, 1, 0, "D  width for --bench (default 512)"},
};

typedef struct labels {
    char **v;
    int n, cap;
} labels;

static int labels_push(labels *l, const char *s, size_t len) {
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == '\t')) len--;
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    if (!len) return 0;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) return cli_errorf("out of memory");
        l->v = nv;
        l->cap = nc;
    }
    if (!(l->v[l->n] = strndup(s, len))) return cli_errorf("out of memory");
    l->n++;
    return 0;
}

static int labels_read(const cli_args *a, labels *l) {
    const char *csv = cli_get(a, "labels"), *file = cli_get(a, "labels-file");
    int rc = 0;
    for (const char *p = csv; p && *p && !rc;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        rc = labels_push(l, p, len);
        p += len + (c ? 1 : 0);
    }
    if (file && !rc) {
        FILE *f = fopen(file, "r");
        if (!f) return cli_errorf("%s: cannot open: %s", file, strerror(errno));
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (!rc && (len = getline(&line, &cap, f)) >= 0) rc = labels_push(l, line, (size_t)len);
        free(line);
        fclose(f);
    }
    if (!rc && (csv || file) && l->n == 0) rc = cli_errorf("--labels: no labels given");
    return rc;
}

static void labels_free(labels *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

/* ---- --bench: the scan on random unit rows, min of several runs ---- */

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

static void unit_rows(float *x, int64_t n, int d, uint64_t *seed) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        float *r = x + i * d;
        for (int j = 0; j < d; j++) {
            r[j] = frand(seed);
            s += (double)r[j] * r[j];
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int j = 0; j < d; j++) r[j] *= inv;
    }
}

static int bench(int64_t n, int d, int k) {
    float *emb = malloc((size_t)n * d * sizeof *emb), *q = malloc((size_t)d * sizeof *q),
          *scores = malloc((size_t)n * sizeof *scores);
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    mc_search_hit *h = malloc((size_t)k * sizeof *h), *h_ref = malloc((size_t)k * sizeof *h_ref);
    int rc = 0;
    if (!emb || !q || !scores || !ids || !h || !h_ref) { rc = cli_errorf("out of memory"); goto out; }
    uint64_t seed = 42;
    unit_rows(emb, n, d, &seed);
    unit_rows(q, 1, d, &seed);
    for (int64_t i = 0; i < n; i++) ids[i] = i + 1;
    const int runs = 20;
    double best = 1e30, sum = 0;
    int m = 0;
    for (int r = 0; r < runs + 1; r++) {   /* the first run warms the caches and threads */
        double t = cli_now_s();
        m = mc_scan_topk(emb, ids, n, d, q, k, scores, h);
        t = cli_now_s() - t;
        if (r == 0) continue;
        if (t < best) best = t;
        sum += t;
    }
    double t_ref = cli_now_s();
    int m_ref = mc_scan_topk_ref(emb, ids, n, d, q, k, scores, h_ref);
    t_ref = cli_now_s() - t_ref;
    int same = m == m_ref;
    for (int i = 0; same && i < m; i++) same = h[i].id == h_ref[i].id;
    double bytes = (double)n * d * sizeof(float);
    printf("exact scan, %lld x %d float32 (%.0f MB), top %d, %d threads:\n", (long long)n, d, bytes / 1e6, k,
           mc_threads_for(2.0 * n * d));
    printf("  min %.2f ms, mean %.2f ms over %d runs; %.1f GB/s; %.1f M rows/s\n", best * 1e3, sum / runs * 1e3, runs,
           bytes / best / 1e9, n / best / 1e6);
    printf("  plain loops (scan.c's oracle, one run): %.2f ms, %.1fx slower; same top %d: %s\n", t_ref * 1e3,
           t_ref / best, k, same ? "yes" : "NO");
    if (!same) rc = cli_errorf("--bench: the scan and its oracle disagree");
out:
    free(emb);
    free(q);
    free(scores);
    free(ids);
    free(h);
    free(h_ref);
    return rc;
}

/* ---- the query ---- */

static int encode_text(mc_context *ctx, const mc_model *model, const char *text, float *out) {
    mc_model_info info;
    mc_model_get_info(model, &info);
    const mc_tokenizer *tok = mc_model_tokenizer(model);
    if (!tok) return cli_errorf("the model has no tokenizer (see --vocab)");
    return cli_embed_texts(ctx, tok, info.context_length, info.embed_dim, &text, 1, 1, 1, out);
}

static void print_result_json(int rank, const mc_search_hit *h, const mc_index_image *im, const labels *l,
                              int best, float prob) {
    printf("%s\n    {\"rank\": %d, \"id\": %lld, \"score\": %.6f, \"path\": ", rank > 1 ? "," : "", rank,
           (long long)h->id, h->score);
    mc_json_write_str(stdout, im->path);
    printf(", \"width\": %d, \"height\": %d", im->width, im->height);
    if (l->n) {
        printf(", \"label\": ");
        mc_json_write_str(stdout, l->v[best]);
        printf(", \"label_prob\": %.6f", prob);
    }
    printf("}");
}

int cmd_search(int argc, char **argv) {
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip search --db photos.db [options] TEXT | --image FILE",
                       "The images of an index closest to a text or an image (exact cosine scan).\n"
                       "The query is encoded by the model the index was made with (-m: another copy of it).",
                       opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    int top = 10, threads = 0;
    const char *v = cli_get(&a, "top");
    if (v && (cli_parse_int(v, &top) || top < 1)) {
        cli_args_free(&a);
        return cli_errorf("--top: expected an integer >= 1, got '%s'", v) + 1;
    }
    if ((v = cli_get(&a, "threads")) && (cli_parse_int(v, &threads) || threads < 0)) {
        cli_args_free(&a);
        return cli_errorf("--threads: expected an integer >= 0, got '%s'", v) + 1;
    }
    if (threads) mc_kernels_set_threads(threads);
    if (cli_has(&a, "bench")) {
        int rows = 100000, dim = 512;
        if (((v = cli_get(&a, "bench-rows")) && (cli_parse_int(v, &rows) || rows < 1)) ||
            ((v = cli_get(&a, "bench-dim")) && (cli_parse_int(v, &dim) || dim < 1))) {
            cli_args_free(&a);
            return cli_errorf("--bench-rows / --bench-dim: expected a positive integer, got '%s'", v) + 1;
        }
        rc = bench(rows, dim, top);
        cli_args_free(&a);
        return rc;
    }
    const char *db = cli_get(&a, "db"), *image = cli_get(&a, "image");
    if (!db || (!image && a.n_pos == 0) || (image && a.n_pos > 0)) {
        cli_args_free(&a);
        return cli_errorf("search: needs --db FILE and either a TEXT or --image FILE (see --help)") + 1;
    }
    labels lab = {0};
    mc_index *idx = NULL;
    mc_model *model = NULL;
    mc_context *ctx = NULL;
    float *q = NULL, *lemb = NULL, *e = NULL;
    mc_search_hit *hits = NULL;
    char *text = NULL;
    mc_error err;
    if ((rc = labels_read(&a, &lab))) goto out;
    /* the positional words are one text */
    size_t tl = 1;
    for (int i = 0; i < a.n_pos; i++) tl += strlen(a.pos[i]) + 1;
    if (!(text = calloc(tl, 1))) { rc = cli_errorf("out of memory"); goto out; }
    for (int i = 0; i < a.n_pos; i++) {
        if (i) strcat(text, " ");
        strcat(text, a.pos[i]);
    }
    mc_index_params ip = mc_index_default_params();
    if (mc_index_open(db, &ip, &idx, &err)) { rc = cli_error(&err); goto out; }
    mc_index_info info;
    if (mc_index_get_info(idx, &info, &err)) { rc = cli_error(&err); goto out; }
    if (info.count == 0) { rc = cli_errorf("%s: the index holds no images yet", db); goto out; }
    const char *mname = cli_get(&a, "model");
    if (!mname && !info.model_path[0])
        { rc = cli_errorf("%s: the index does not say where its model is; give -m MODEL (%s)", db, info.model_id); goto out; }
    cli_model_opts mo = {mname ? mname : info.model_path, cli_get(&a, "config"), cli_get(&a, "vocab"), image != NULL,
                         !image || lab.n > 0, 1, cli_get(&a, "weights")};
    if ((rc = cli_model_load(&mo, &model, NULL, 0, NULL))) goto out;
    char id[256];
    if (mc_model_id(model, id, sizeof id, &err)) { rc = cli_error(&err); goto out; }
    if (strcmp(id, info.model_id)) {
        rc = cli_errorf("%s: the index was made with model '%s', the query model is '%s'", db, info.model_id, id);
        goto out;
    }
    mc_model_info mi;
    mc_model_get_info(model, &mi);
    int D = mi.embed_dim;
    if ((rc = cli_context_new(model, threads, lab.n > 0 ? lab.n : 1, &ctx))) goto out;
    q = malloc((size_t)D * sizeof *q);
    e = malloc((size_t)D * sizeof *e);
    hits = malloc((size_t)top * sizeof *hits);
    lemb = lab.n ? malloc((size_t)lab.n * D * sizeof *lemb) : NULL;
    if (!q || !e || !hits || (lab.n && !lemb)) { rc = cli_errorf("out of memory"); goto out; }
    if (image) {
        float *px = malloc((size_t)3 * mi.image_size * mi.image_size * sizeof *px);
        if (!px) { rc = cli_errorf("out of memory"); goto out; }
        if (mc_image_preprocess_file(image, &mi.preprocess, px, &err)) rc = cli_error(&err);
        else if (mc_encode_image(ctx, px, 1, 1, q)) rc = cli_error(mc_context_last_error(ctx));
        free(px);
        if (rc) goto out;
    } else if ((rc = encode_text(ctx, model, text, q))) {
        goto out;
    }
    for (int i = 0; i < lab.n && !rc; i++) {
        size_t len = strlen(LABEL_TEMPLATE) + strlen(lab.v[i]) + 1;
        char *prompt = malloc(len);
        if (!prompt) { rc = cli_errorf("out of memory"); break; }
        snprintf(prompt, len, LABEL_TEMPLATE, lab.v[i]);
        rc = encode_text(ctx, model, prompt, lemb + (size_t)i * D);
        free(prompt);
    }
    if (rc) goto out;
    int n = 0;
    if (mc_index_search(idx, q, D, top, hits, &n, &err)) { rc = cli_error(&err); goto out; }
    int json = cli_has(&a, "json");
    if (json) {
        printf("{\"query\": {\"%s\": ", image ? "image" : "text");
        mc_json_write_str(stdout, image ? image : text);
        printf("}, \"index\": ");
        mc_json_write_str(stdout, db);
        printf(", \"model\": ");
        mc_json_write_str(stdout, info.model_id);
        printf(", \"count\": %lld, \"results\": [", (long long)info.count);
    }
    for (int r = 0; r < n && !rc; r++) {
        mc_index_image im;
        if (mc_index_get_image(idx, hits[r].id, &im, &err)) { rc = cli_error(&err); break; }
        int best = 0;
        float prob = 0;
        if (lab.n) {   /* softmax over the labels of logit_scale (clamped to 100, as classify) * cosine */
            double scale = mi.logit_scale > 100 ? 100 : mi.logit_scale;
            if (mc_index_get_embedding(idx, hits[r].id, e, D, &err)) { rc = cli_error(&err); break; }
            double mx = -1e30, z = 0;
            float *lg = malloc((size_t)lab.n * sizeof *lg);
            if (!lg) { rc = cli_errorf("out of memory"); break; }
            for (int i = 0; i < lab.n; i++) {
                double c = 0;
                for (int j = 0; j < D; j++) c += (double)e[j] * lemb[(size_t)i * D + j];
                lg[i] = (float)(scale * c);
                if (lg[i] > mx) mx = lg[i], best = i;
            }
            for (int i = 0; i < lab.n; i++) z += exp(lg[i] - mx);
            prob = (float)(1.0 / z);
            free(lg);
        }
        if (json) {
            print_result_json(r + 1, &hits[r], &im, &lab, best, prob);
        } else {
            printf("%3d  %.4f  %s", r + 1, hits[r].score, im.path);
            if (lab.n) printf("  [%s %.2f]", lab.v[best], prob);
            putchar('\n');
        }
    }
    if (json && !rc) printf("\n]}\n");
    if (!rc && fflush(stdout) != 0) rc = cli_errorf("cannot write to stdout");
out:
    free(text);
    free(q);
    free(e);
    free(lemb);
    free(hits);
    labels_free(&lab);
    mc_context_free(ctx);
    mc_model_free(model);
    mc_index_close(idx);
    cli_args_free(&a);
    return rc;
}
