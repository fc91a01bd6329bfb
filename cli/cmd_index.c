/*
 * cmd_index.c - the 'index' command: incremental photo index of folders in
 * an SQLite file (mc_index_update; docs/search.md), with a progress bar
 * (images/s, ETA) and the skipped files counted by reason.
 */
#include "cli.h"
#include "embed.h"
#include "progress.h"

#include <stdio.h>
#include <string.h>

static const cli_opt opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (see 'mobileclip list')"},
    {"db", 0, 1, 0, "FILE  the index (created when missing)"},
    {"workers", 0, 1, 0, "K  K batches at once, each on its own context with threads/K threads (1..64, default 1)"},
    {"threads", 't', 1, 0, "N  compute threads (default: one per core)"},
    {"decode-threads", 0, 1, 0, "N  image reading and decoding threads per worker (default 2)"},
    {"batch", 'b', 1, 0, "N  images per forward pass and per committed transaction (default 16)"},
    {"reembed", 0, 0, 0, "the index was made with another model: re-embed every image with this one"},
    {"verbose", 'v', 0, 0, "list every skipped file with the reason"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    CLI_WEIGHTS_OPT,
    {"quiet", 'q', 0, 0, "no progress bar"},
};

static const char *const reason_names[MC_INDEX_SKIP_COUNT] = {"unreadable", "not decodable"};

typedef struct index_ui {
    cli_progress bar;
    int verbose, started, show;
} index_ui;

static void on_progress(void *user, int64_t done, int64_t total) {
    index_ui *ui = user;
    if (!ui->started) {
        cli_progress_start(&ui->bar, "images", total, 0, ui->show);
        ui->started = 1;
    }
    cli_progress_update(&ui->bar, done);
}

static void on_skip(void *user, const char *path, mc_index_skip why, const char *msg) {
    index_ui *ui = user;
    if (!ui->verbose) return;
    if (ui->started) cli_progress_end(&ui->bar);
    if (strstr(msg, path)) fprintf(stderr, "mobileclip: skipped (%s) %s\n", reason_names[why], msg);
    else fprintf(stderr, "mobileclip: skipped (%s) %s: %s\n", reason_names[why], path, msg);
}

static int parse_count(const cli_args *a, const char *name, int dflt, int min, int *out) {
    const char *v = cli_get(a, name);
    *out = dflt;
    if (v && (cli_parse_int(v, out) || *out < min))
        return cli_errorf("--%s: expected an integer >= %d, got '%s'", name, min, v);
    return 0;
}

int cmd_index(int argc, char **argv) {
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip index -m MODEL --db photos.db [options] DIR...",
                       "Indexes the images under each folder (recursively; .jpg .jpeg .jpe .png .webp) into\n"
                       "an SQLite file: new and changed images are embedded, deleted ones forgotten.\n"
                       "One transaction per batch: an interrupted run keeps what it committed and the\n"
                       "next run resumes.  An index made with another model is refused (see --reembed).\n"
                       "Search it with 'mobileclip search --db photos.db TEXT' (docs/search.md).",
                       opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    mc_index_update_params up = mc_index_update_default_params();
    if (cli_parse_workers(cli_get(&a, "workers"), &up.workers) || parse_count(&a, "threads", 0, 0, &up.threads) ||
        parse_count(&a, "decode-threads", 2, 1, &up.decode_threads) || parse_count(&a, "batch", 16, 1, &up.batch)) {
        cli_args_free(&a);
        return 2;
    }
    const char *db = cli_get(&a, "db");
    if (!db || a.n_pos == 0) {
        cli_args_free(&a);
        return cli_errorf("index: needs --db FILE and at least one folder (see --help)") + 1;
    }
    mc_model *model = NULL;
    mc_index *idx = NULL;
    mc_error err;
    cli_model_opts mo = {cli_get(&a, "model"), cli_get(&a, "config"), NULL, 1, 0, 1, cli_get(&a, "weights")};
    if ((rc = cli_model_load(&mo, &model, NULL, 0, NULL))) goto out;
    mc_index_params ip = mc_index_default_params();
    ip.readonly = 0;
    ip.create = 1;
    if (mc_index_open(db, &ip, &idx, &err)) { rc = cli_error(&err); goto out; }
    index_ui ui = {0};
    ui.verbose = cli_has(&a, "verbose");
    ui.show = !cli_has(&a, "quiet");
    up.reembed = cli_has(&a, "reembed");
    up.progress = on_progress;
    up.progress_user = &ui;
    up.on_skip = on_skip;
    up.skip_user = &ui;
    mc_index_update_stats s;
    mc_status st = mc_index_update(idx, model, a.pos, a.n_pos, &up, &s, &err);
    if (ui.started) cli_progress_end(&ui.bar);
    if (st != MC_OK) { rc = cli_error(&err); goto out; }
    int64_t embedded = s.added + s.updated;
    fprintf(stderr, "mobileclip: %lld images found: %lld added, %lld updated, %lld unchanged, %lld removed, %lld skipped",
            (long long)s.found, (long long)s.added, (long long)s.updated, (long long)s.unchanged, (long long)s.removed,
            (long long)s.skipped);
    if (s.skipped) {
        const char *sep = " (";
        for (int r = 0; r < MC_INDEX_SKIP_COUNT; r++) {
            if (!s.skipped_by[r]) continue;
            fprintf(stderr, "%s%lld %s", sep, (long long)s.skipped_by[r], reason_names[r]);
            sep = ", ";
        }
        fputs(ui.verbose ? ")" : "; --verbose lists them)", stderr);
    }
    fprintf(stderr, "; %.1f s", s.seconds);
    if (embedded && s.seconds > 0) fprintf(stderr, ", %.1f images/s", embedded / s.seconds);
    fputc('\n', stderr);
    mc_index_info info;
    if (mc_index_get_info(idx, &info, &err)) { rc = cli_error(&err); goto out; }
    printf("%s: %lld images, dim %d, model %s\n", db, (long long)info.count, info.dim, info.model_id);
out:
    mc_index_close(idx);
    mc_model_free(model);
    cli_args_free(&a);
    return rc;
}
