/*
 * cmd_classify.c - the 'classify' command: zero-shot classification as
 * CLIP does it.  Each label's classifier is the mean of its L2-normalised
 * template embeddings, re-normalised; probabilities are
 * softmax(logit_scale * cosine) with logit_scale = exp(parameter), clamped
 * to 100 as the reference does.
 *
 * Output, per image (in input order; undecodable images are reported on
 * stderr and skipped):
 *   PATH
 *   LABEL<TAB>PROBABILITY        (top K, most probable first, "%.6f")
 *   <empty line>
 */
#include "cli.h"
#include "embed.h"
#include "progress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TEMPLATE "a photo of a {}."

static const cli_opt classify_opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (see 'mobileclip list')"},
    {"labels", 'l', 1, 1, "\"dog,cat,...\"  class names, comma-separated (repeatable)"},
    {"labels-file", 0, 1, 1, "FILE  class names, one a line (repeatable)"},
    {"template", 0, 1, 1, "TEXT  prompt with {} for the label (repeatable; default \"" DEFAULT_TEMPLATE "\")"},
    {"top", 'k', 1, 0, "K  labels printed per image (default 5)"},
    {"vocab", 0, 1, 0, "FILE  the BPE vocabulary"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    CLI_WEIGHTS_OPT,
    {"batch", 'b', 1, 0, "N  images per forward pass (default 8)"},
    {"threads", 't', 1, 0, "N  compute threads (default: one per core)"},
    {"workers", 0, 1, 0, "K  K batches at once, each on its own context with threads/K threads (1..64, default 1)"},
    {"no-exif", 0, 0, 0, "ignore the EXIF orientation tag"},
    {"strict", 0, 0, 0, "fail when an image cannot be decoded"},
    {"quiet", 'q', 0, 0, "no progress bar"},
};

typedef struct str_list {
    char **s;
    size_t n, cap;
} str_list;

static int str_push(str_list *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        char **ns = realloc(l->s, nc * sizeof *ns);
        if (!ns) return cli_errorf("out of memory");
        l->s = ns;
        l->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return cli_errorf("out of memory");
    memcpy(c, s, len);
    c[len] = 0;
    l->s[l->n++] = c;
    return 0;
}

static void str_free(str_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
}

/* pushes s[0..len) without surrounding blanks; skips it when empty */
static int push_trimmed(str_list *l, const char *s, size_t len) {
    while (len && (*s == ' ' || *s == '\t')) { s++; len--; }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n')) len--;
    return len ? str_push(l, s, len) : 0;
}

static int labels_from_arg(str_list *l, const char *arg) {
    for (const char *p = arg;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (push_trimmed(l, p, len)) return 1;
        if (!c) return 0;
        p = c + 1;
    }
}

static int labels_from_file(str_list *l, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return cli_errorf("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) rc = push_trimmed(l, line, (size_t)len);
    free(line);
    fclose(f);
    return rc;
}

int cmd_classify(int argc, char **argv) {
    const int n_opts = (int)(sizeof classify_opts / sizeof classify_opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, classify_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout,
                       "mobileclip classify -m MODEL --labels \"dog,cat\" | --labels-file F [options] IMAGE|FOLDER...",
                       "Zero-shot classification.  Each label's text embedding is the mean of its\n"
                       "L2-normalised template embeddings, re-normalised; probabilities are\n"
                       "softmax(logit_scale * cosine), logit_scale = exp(parameter) (at most 100).\n"
                       "Prints, per image: its path, then K lines 'LABEL<TAB>PROBABILITY' (most\n"
                       "probable first), then an empty line.",
                       classify_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    str_list labels = {0}, templates = {0}, prompts = {0};
    cli_image_list list = {0};
    mc_model *model = NULL;
    mc_context *ctx = NULL;
    float *temb = NULL, *cls = NULL, *iemb = NULL;
    size_t *rows = NULL, n_rows = 0;
    int top = 5, batch = 8, threads = 0, workers = 1;
    const char **vals;
    int nv = cli_get_all(&a, "labels", &vals);
    for (int i = 0; i < nv && !rc; i++) rc = labels_from_arg(&labels, vals[i]);
    nv = cli_get_all(&a, "labels-file", &vals);
    for (int i = 0; i < nv && !rc; i++) rc = labels_from_file(&labels, vals[i]);
    nv = cli_get_all(&a, "template", &vals);
    for (int i = 0; i < nv && !rc; i++) {
        if (!strstr(vals[i], "{}")) rc = cli_errorf("--template '%s' has no {} for the label", vals[i]);
        else rc = str_push(&templates, vals[i], strlen(vals[i]));
    }
    if (!rc && templates.n == 0) rc = str_push(&templates, DEFAULT_TEMPLATE, strlen(DEFAULT_TEMPLATE));
    if (rc) { rc = 2; goto out; }
    if (labels.n == 0) { rc = cli_errorf("classify: no labels (--labels or --labels-file)") + 1; goto out; }
    if (a.n_pos == 0) { rc = cli_errorf("classify: no images given (see --help)") + 1; goto out; }
    const char *v;
    if ((v = cli_get(&a, "top")) && (cli_parse_int(v, &top) || top < 1)) {
        rc = cli_errorf("--top: expected an integer >= 1, got '%s'", v) + 1;
        goto out;
    }
    if ((v = cli_get(&a, "batch")) && (cli_parse_int(v, &batch) || batch < 1)) {
        rc = cli_errorf("--batch: expected an integer >= 1, got '%s'", v) + 1;
        goto out;
    }
    if ((v = cli_get(&a, "threads")) && (cli_parse_int(v, &threads) || threads < 0)) {
        rc = cli_errorf("--threads: expected an integer >= 0, got '%s'", v) + 1;
        goto out;
    }
    if (cli_parse_workers(cli_get(&a, "workers"), &workers)) { rc = 2; goto out; }
    if ((size_t)top > labels.n) top = (int)labels.n;
    for (size_t l = 0; l < labels.n && !rc; l++)
        for (size_t t = 0; t < templates.n && !rc; t++) {
            char *p = mc_fill_template(templates.s[t], labels.s[l]);
            if (!p) { rc = cli_errorf("out of memory"); break; }
            rc = str_push(&prompts, p, strlen(p));
            free(p);
        }
    if (rc) goto out;
    if ((rc = cli_image_list_build(a.pos, a.n_pos, &list))) goto out;

    cli_model_opts mo = {cli_get(&a, "model"), cli_get(&a, "config"), cli_get(&a, "vocab"), 1, 1, 1, cli_get(&a, "weights")};
    if ((rc = cli_model_load(&mo, &model, NULL, 0, NULL))) goto out;
    mc_model_info info;
    mc_model_get_info(model, &info);
    const mc_tokenizer *tok = mc_model_tokenizer(model);
    if (!tok) { rc = cli_errorf("the model has no tokenizer (see --vocab)"); goto out; }
    if ((rc = cli_context_new(model, threads, batch > 32 ? batch : 32, &ctx))) goto out;

    int D = info.embed_dim;
    temb = malloc(prompts.n * (size_t)D * sizeof *temb);
    cls = calloc(labels.n * (size_t)D, sizeof *cls);
    if (!temb || !cls) { rc = cli_errorf("out of memory"); goto out; }
    if ((rc = cli_embed_texts(ctx, tok, info.context_length, D, (const char *const *)prompts.s, prompts.n,
                              32, 1, temb)))
        goto out;
    mc_zeroshot_classifiers(temb, (int)labels.n, (int)templates.n, D, cls);

    mc_preprocess_params pp = info.preprocess;
    if (cli_has(&a, "no-exif")) pp.apply_exif = 0;
    cli_embed_opts eo = {batch, 2, workers, threads, 1, cli_has(&a, "strict"), !cli_has(&a, "quiet")};
    if ((rc = cli_embed_images(ctx, model, &info, &pp, &list, &eo, &iemb, &rows, &n_rows))) goto out;

    double *prob = malloc(labels.n * sizeof *prob);
    size_t *order = malloc(labels.n * sizeof *order);
    if (!prob || !order) { free(prob); free(order); rc = cli_errorf("out of memory"); goto out; }
    for (size_t i = 0; i < n_rows; i++) {
        mc_zeroshot_probs(iemb + i * (size_t)D, cls, (int)labels.n, D, info.logit_scale, prob);
        /* top K by selection, ties keep label order */
        for (size_t l = 0; l < labels.n; l++) order[l] = l;
        printf("%s\n", list.paths[rows[i]]);
        for (int k = 0; k < top; k++) {
            size_t best = (size_t)k;
            for (size_t l = (size_t)k + 1; l < labels.n; l++)
                if (prob[order[l]] > prob[order[best]]) best = l;
            size_t tmp = order[k];
            order[k] = order[best];
            order[best] = tmp;
            printf("%s\t%.6f\n", labels.s[order[k]], prob[order[k]]);
        }
        printf("\n");
    }
    free(prob);
    free(order);
    if (fflush(stdout) != 0) rc = cli_errorf("cannot write to stdout");
out:
    free(temb);
    free(cls);
    free(iemb);
    free(rows);
    mc_context_free(ctx);
    mc_model_free(model);
    cli_image_list_free(&list);
    str_free(&labels);
    str_free(&templates);
    str_free(&prompts);
    cli_args_free(&a);
    return rc;
}
