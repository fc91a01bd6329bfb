/*
 * cmd_embed.c - the 'embed-image' and 'embed-text' commands: embeddings as a
 * float32 [N, D] .npy (-o) or one JSON array per line on stdout.  Images go
 * through the library's batch pipeline (search/pipeline.h, which the photo
 * index runs too): decode threads one batch ahead of the encoder, --workers K
 * such pipelines, each with its own context, taking batches from a shared
 * counter; each batch's rows land in the output.
 * Also the image-list and batch-encoding helpers that 'classify' shares.
 */
#include "cli.h"
#include "embed.h"
#include "progress.h"
#include "search/pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- image lists ---- */

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
                if (e->d_name[0] == '.' || !mc_image_name_supported(e->d_name)) continue;
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

/* ---- images through the library's pipeline (search/pipeline.h) ---- */

typedef struct embed_run {
    const cli_image_list *list;
    const cli_embed_opts *o;
    const mc_preprocess_params *pp;
    size_t D;
    float *emb;                /* [n, D]: row i is image i's embedding */
    unsigned char *ok;         /* [n]: image i was embedded */
    size_t n_done;             /* images handled (embedded or skipped) */
    cli_progress bar;
    size_t err_at;             /* --strict: the list index of the first bad image seen */
    char *err;                 /* its message, malloc'd */
} embed_run;

static int prepare_image(void *user, size_t i, float *pixels, mc_error *err) {
    embed_run *r = user;
    return mc_image_preprocess_file(r->list->paths[i], r->pp, pixels, err) == MC_OK ? MC_PIPE_ENCODE : MC_PIPE_FAILED;
}

/* Reports (or with --strict records) the batch's bad images, then takes its
 * rows; called by the pipeline under its lock. */
static mc_status consume_images(void *user, size_t first, size_t count, const int *state, const mc_error *errs,
                                const float *emb, mc_error *err) {
    embed_run *r = user;
    for (size_t k = 0; k < count; k++) {
        if (state[k] == MC_PIPE_ENCODE) continue;
        const char *path = r->list->paths[first + k];
        const char *msg = errs[k].message[0] ? errs[k].message : "cannot decode";
        int named = strstr(msg, path) != NULL;   /* the message names the file already */
        if (r->o->strict) {
            if (!r->err || first + k < r->err_at) {
                char buf[MC_ERROR_MESSAGE_MAX + 4096];
                snprintf(buf, sizeof buf, "%s%s%s", named ? "" : path, named ? "" : ": ", msg);
                free(r->err);
                r->err = strdup(buf);
                r->err_at = first + k;
            }
            continue;
        }
        cli_progress_end(&r->bar);
        if (named) fprintf(stderr, "mobileclip: skipping %s\n", msg);
        else fprintf(stderr, "mobileclip: skipping %s: %s\n", path, msg);
    }
    if (r->err) {   /* stop handing out batches; the message is r->err */
        err->status = MC_ERR_IMAGE;
        snprintf(err->message, sizeof err->message, "%s", r->err);
        return MC_ERR_IMAGE;
    }
    if (!emb) return MC_OK;
    for (size_t k = 0, g = 0; k < count; k++) {
        if (state[k] != MC_PIPE_ENCODE) continue;
        memcpy(r->emb + (first + k) * r->D, emb + g++ * r->D, r->D * sizeof(float));
        r->ok[first + k] = 1;
    }
    r->n_done += count;
    cli_progress_update(&r->bar, (int64_t)r->n_done);
    return MC_OK;
}

int cli_embed_images(mc_context *ctx, const mc_model *model, const mc_model_info *info,
                     const mc_preprocess_params *pp, const cli_image_list *list, const cli_embed_opts *o,
                     float **emb_out, size_t **rows_out, size_t *n_out) {
    embed_run r;
    memset(&r, 0, sizeof r);
    r.list = list;
    r.o = o;
    r.pp = pp;
    r.D = (size_t)info->embed_dim;
    size_t n = list->n;
    r.emb = malloc((n ? n : 1) * r.D * sizeof *r.emb);
    r.ok = calloc(n ? n : 1, 1);
    size_t *rows = malloc((n ? n : 1) * sizeof *rows);
    int rc = 0;
    if (!r.emb || !r.ok || !rows) rc = cli_errorf("out of memory");
    if (!rc) {
        mc_pipeline pl = {0};
        pl.model = model;
        pl.ctx = o->workers > 1 ? NULL : ctx;   /* one worker: the caller's context, in the calling thread */
        pl.pp = pp;
        pl.n = n;
        pl.batch = o->batch;
        pl.decode_threads = o->decode_threads;
        pl.workers = o->workers;
        pl.threads = o->threads;
        pl.normalize = o->normalize;
        pl.prepare = prepare_image;
        pl.consume = consume_images;
        pl.user = &r;
        cli_progress_start(&r.bar, "images", (int64_t)n, 0, o->show_progress && n >= 16);
        mc_error err;
        mc_status st = mc_pipeline_run(&pl, &err);
        cli_progress_end(&r.bar);
        /* --strict: the first bad image in list order, whichever worker saw it */
        if (r.err) rc = cli_errorf("%s", r.err);
        else if (st != MC_OK) rc = cli_error(&err);
    }
    if (!rc) {
        size_t n_rows = 0;
        for (size_t i = 0; i < n; i++) {
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
    free(r.emb);
    free(r.ok);
    free(r.err);
    free(rows);
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

/* OUT.npy.txt: the input path of each row, one a line (temp + rename) */
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
        if (fclose(f) != 0 || rename(tmp, path) != 0) {
            remove(tmp);
            rc = cli_errorf("%s: write failed", path);
        }
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

static int n_cores(void) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

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
