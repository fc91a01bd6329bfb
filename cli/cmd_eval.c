/*
 * cmd_eval.c - the 'eval' command: zero-shot classification on an
 * ImageFolder tree (--imagenet-val) and image-text retrieval on webdataset
 * shards (--retrieval), with open_clip's figures (src/eval/eval.h, the
 * definitions in docs/eval.md).  Prints a summary; -o appends the results as
 * one JSON line (open_clip's results.jsonl); --json prints that line instead
 * of the summary.
 */
#include "cli.h"
#include "progress.h"

#include "eval/eval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const cli_opt eval_opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (see 'mobileclip list')"},
    {"imagenet-val", 0, 1, 0, "DIR  zero-shot classification on an ImageFolder tree (DIR/CLASS/IMAGE)"},
    {"classnames", 0, 1, 0, "FILE  class names, one a line in the sorted order of the class folders (default: folder names, '_' as ' ')"},
    {"templates", 0, 1, 0, "FILE  prompt templates, one a line, with {} or {c} for the class name (default: 6 built-in)"},
    {"retrieval", 0, 1, 0, "SHARDS  image-text retrieval on webdataset shards (image + .txt caption), e.g. 'val/{000..009}.tar'"},
    {"batch", 'b', 1, 0, "N  images and texts per forward pass (default 32)"},
    {"threads", 't', 1, 0, "N  compute threads (default: one per core)"},
    {"decode-threads", 0, 1, 0, "N  image decoding threads working one batch ahead (0..16, default 2)"},
    {"output", 'o', 1, 0, "FILE  append the results as one JSON line (like open_clip's results.jsonl)"},
    {"json", 0, 0, 0, "print the JSON line on stdout instead of the summary"},
    {"strict", 0, 0, 0, "fail on an undecodable image or an incomplete sample (default: skip and count it)"},
    {"no-exif", 0, 0, 0, "ignore the EXIF orientation tag"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    {"vocab", 0, 1, 0, "FILE  the BPE vocabulary"},
    CLI_WEIGHTS_OPT,
    {"quiet", 'q', 0, 0, "no progress bar, no messages about skipped images"},
};

typedef struct eval_ui {
    cli_progress bar;
    const char *stage;
    int show_progress;
    int show_skips;
} eval_ui;

static int on_progress(void *user, const char *stage, int64_t done, int64_t total) {
    eval_ui *u = user;
    if (u->stage != stage && (!u->stage || strcmp(u->stage, stage))) {
        cli_progress_end(&u->bar);
        cli_progress_start(&u->bar, stage, total, 0, u->show_progress);
        u->stage = stage;
    }
    cli_progress_update(&u->bar, done);
    return 0;
}

static void on_skip(void *user, const char *what, const mc_error *why) {
    eval_ui *u = user;
    if (!u->show_skips) return;
    cli_progress_end(&u->bar);
    const char *msg = why && why->message[0] ? why->message : "cannot be used";
    if (strstr(msg, what)) fprintf(stderr, "mobileclip: skipping %s\n", msg);
    else fprintf(stderr, "mobileclip: skipping %s: %s\n", what, msg);
}

static int parse_count(const cli_args *a, const char *name, int dflt, int min, int max, int *out) {
    const char *v = cli_get(a, name);
    *out = dflt;
    if (v && (cli_parse_int(v, out) || *out < min || *out > max))
        return cli_errorf("--%s: expected an integer from %d to %d, got '%s'", name, min, max, v);
    return 0;
}

static void print_ranks(const char *label, const mc_rank_metrics *m) {
    printf("  %-12s %9.2f %11.0f %8.2f %% %6.2f %% %6.2f %%\n", label, m->mean_rank, m->median_rank,
           100 * m->r1, 100 * m->r5, 100 * m->r10);
}

static void print_summary(const mc_eval_results *r, const char *folder, const char *shards) {
    printf("model      %s\n", r->model);
    if (r->zeroshot.done) {
        const mc_zeroshot_result *z = &r->zeroshot;
        printf("zero-shot  %s: %lld images, %lld classes, %lld templates", folder, (long long)z->n_images,
               (long long)z->n_classes, (long long)z->n_templates);
        if (z->n_skipped) printf(" (%lld skipped)", (long long)z->n_skipped);
        printf("\n  top-1    %6.2f %%  (%lld of %lld)\n", 100 * z->top1, (long long)z->top1_correct,
               (long long)z->n_images);
        printf("  top-%d    %6.2f %%  (%lld of %lld)\n", z->top_k, 100 * z->top5, (long long)z->top5_correct,
               (long long)z->n_images);
    }
    if (r->retrieval.done) {
        const mc_retrieval_result *t = &r->retrieval;
        printf("retrieval  %s: %lld image-caption pairs", shards, (long long)t->n_samples);
        if (t->n_skipped) printf(" (%lld skipped)", (long long)t->n_skipped);
        printf("\n  %-12s %9s %11s %10s %8s %8s\n", "", "mean rank", "median rank", "R@1", "R@5", "R@10");
        print_ranks("image->text", &t->image_to_text);
        print_ranks("text->image", &t->text_to_image);
    }
}

static int append_line(const char *path, const char *line) {
    FILE *f = fopen(path, "a");
    if (!f) return cli_errorf("%s: cannot open for appending: %s", path, strerror(errno));
    int bad = fprintf(f, "%s\n", line) < 0;
    if (fclose(f) != 0) bad = 1;
    if (bad) return cli_errorf("%s: write failed", path);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const int n_opts = (int)(sizeof eval_opts / sizeof eval_opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, eval_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout,
                       "mobileclip eval -m MODEL [--imagenet-val DIR [--classnames F] [--templates F]] "
                       "[--retrieval SHARDS] [-o results.jsonl] [--json] [options]",
                       "Evaluates a model as open_clip does (definitions: docs/eval.md).\n"
                       "--imagenet-val: zero-shot top-1 / top-5 accuracy on an ImageFolder tree, the\n"
                       "classifier made from the class names and the prompt templates.\n"
                       "--retrieval: image-to-text and text-to-image mean / median rank and R@1/5/10\n"
                       "on webdataset shards of images and their captions.\n"
                       "Images that cannot be decoded (and samples without an image or a caption) are\n"
                       "reported on stderr, skipped and counted; --strict makes them errors.",
                       eval_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    int batch, threads, dthreads;
    if (parse_count(&a, "batch", 32, 1, 65536, &batch) || parse_count(&a, "threads", 0, 0, 4096, &threads) ||
        parse_count(&a, "decode-threads", 2, 0, MC_EVAL_MAX_DECODE_THREADS, &dthreads)) {
        cli_args_free(&a);
        return 2;
    }
    const char *folder = cli_get(&a, "imagenet-val"), *shards = cli_get(&a, "retrieval");
    if (a.n_pos) rc = cli_errorf("eval: unexpected argument '%s' (see --help)", a.pos[0]);
    else if (!folder && !shards)
        rc = cli_errorf("eval: nothing to evaluate: give --imagenet-val DIR and/or --retrieval SHARDS");
    else if (!folder && (cli_has(&a, "classnames") || cli_has(&a, "templates")))
        rc = cli_errorf("eval: --classnames and --templates need --imagenet-val DIR");
    if (rc) {
        cli_args_free(&a);
        return 2;
    }

    mc_model *model = NULL;
    char *json = NULL;
    eval_ui ui;
    memset(&ui, 0, sizeof ui);
    ui.show_progress = !cli_has(&a, "quiet");
    ui.show_skips = !cli_has(&a, "quiet");
    cli_model_opts mo = {cli_get(&a, "model"), cli_get(&a, "config"), cli_get(&a, "vocab"), 1, 1, 1, cli_get(&a, "weights")};
    if ((rc = cli_model_load(&mo, &model, NULL, 0, NULL))) goto out;
    mc_model_info info;
    mc_model_get_info(model, &info);
    mc_preprocess_params pp = info.preprocess;
    if (cli_has(&a, "no-exif")) pp.apply_exif = 0;
    mc_eval_params ep = mc_eval_default_params();
    ep.batch = batch;
    ep.n_threads = threads;
    ep.decode_threads = dthreads;
    ep.strict = cli_has(&a, "strict");
    ep.preprocess = &pp;
    ep.progress = on_progress;
    ep.progress_user = &ui;
    ep.on_skip = on_skip;
    ep.skip_user = &ui;

    mc_eval_results res;
    mc_eval_results_init(&res);
    res.model = mo.model;
    mc_error err;
    mc_error_clear(&err);
    if (folder) {
        mc_status st = mc_eval_zeroshot(model, folder, cli_get(&a, "classnames"), cli_get(&a, "templates"), &ep,
                                        &res.zeroshot, &err);
        cli_progress_end(&ui.bar);
        ui.stage = NULL;
        if (st != MC_OK) { rc = cli_error(&err); goto out; }
    }
    if (shards) {
        mc_status st = mc_eval_retrieval(model, shards, &ep, &res.retrieval, &err);
        cli_progress_end(&ui.bar);
        ui.stage = NULL;
        if (st != MC_OK) { rc = cli_error(&err); goto out; }
    }
    if (mc_eval_results_json(&res, &json, &err)) { rc = cli_error(&err); goto out; }
    const char *outp = cli_get(&a, "output");
    if (outp && (rc = append_line(outp, json))) goto out;
    if (cli_has(&a, "json")) printf("%s\n", json);
    else print_summary(&res, folder, shards);
    if (fflush(stdout) != 0) rc = cli_errorf("cannot write to stdout");
out:
    free(json);
    mc_model_free(model);
    cli_args_free(&a);
    return rc;
}
