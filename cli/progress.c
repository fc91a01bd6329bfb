/*
 * progress.c - the CLI's progress bar and model-argument handling (see
 * progress.h).
 */
#include "progress.h"
#include "cli.h"
#include "io/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double cli_cpu_s(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double cli_rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

double cli_peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss / 1024.0;   /* KiB on Linux */
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total, int bytes, int want) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->bytes = bytes;
    p->t0 = cli_now_s();
    const char *off = getenv("MOBILECLIP_NO_PROGRESS");
    p->enabled = want && isatty(2) && !(off && *off);
}

void cli_progress_update(cli_progress *p, int64_t done) {
    if (!p->enabled) return;
    double t = cli_now_s();
    if (p->drawn && t - p->last < 0.1 && done != p->total) return;
    p->last = t;
    p->drawn = 1;
    char amount[64];
    if (p->bytes && p->total > 0)
        snprintf(amount, sizeof amount, "%.1f/%.1f MB", done / 1e6, p->total / 1e6);
    else if (p->bytes)
        snprintf(amount, sizeof amount, "%.1f MB", done / 1e6);
    else if (p->total > 0)
        snprintf(amount, sizeof amount, "%lld/%lld", (long long)done, (long long)p->total);
    else
        snprintf(amount, sizeof amount, "%lld", (long long)done);
    if (p->total > 0) {
        int w = 30, fill = (int)(w * (double)done / (double)p->total);
        if (fill > w) fill = w;
        char bar[32];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        char rate[64] = "";
        double dt = t - p->t0;
        if (!p->bytes && done > 0 && dt > 0) {   /* a count: items/s and the time left */
            double r = done / dt, left = (double)(p->total - done) / r;
            snprintf(rate, sizeof rate, " %.1f/s ETA %d:%02d", r, (int)(left / 60), (int)left % 60);
        }
        fprintf(stderr, "\r%s [%s] %3d%% %s%s ", p->label, bar, (int)(100.0 * done / p->total), amount, rate);
    } else {
        fprintf(stderr, "\r%s %s ", p->label, amount);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->enabled && p->drawn) fputc('\n', stderr);
    p->drawn = 0;
}

int cli_progress_download(void *user, const char *label, int64_t done, int64_t total) {
    (void)user;
    static cli_progress bar;
    static const char *cur;
    if (cur != label || !bar.enabled) {
        if (cur != label) {
            if (bar.enabled) cli_progress_end(&bar);
            cli_progress_start(&bar, label ? label : "download", total, 1, 1);
            cur = label;
        }
    }
    bar.total = total;
    cli_progress_update(&bar, done);
    if (total > 0 && done >= total && bar.drawn) {
        cli_progress_end(&bar);
        cur = NULL;
    }
    return 0;
}

int cli_parse_weights(const char *s, int *out) {
    static const char *const names[MC_WEIGHTS_COUNT] = {"f32", "bf16", "f16", "int8"};
    *out = MC_WEIGHTS_F32;
    if (!s) return 0;
    for (int i = 0; i < MC_WEIGHTS_COUNT; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return cli_errorf("--weights: expected f32, bf16, f16 or int8, got '%s'", s);
}

int cli_model_load(const cli_model_opts *o, mc_model **out, char *resolved_out, size_t cap,
                   const char **name_out) {
    char path[4096];
    const mc_registry_entry *e = NULL;
    mc_error err;
    mc_error_clear(&err);
    if (!o->model) return cli_errorf("no model given (-m MODEL: a checkpoint, a folder or an official name)");
    const char *off = getenv("MOBILECLIP_OFFLINE");
    mc_download_params dp = mc_download_default_params();
    dp.progress = cli_progress_download;
    if (!isatty(2)) dp.progress = NULL;
    int allow = !(off && *off && strcmp(off, "0"));
    if (!mc_registry_find(o->model) || access(o->model, F_OK) == 0) {
        /* a path: no download */
    } else if (allow) {
        const mc_registry_entry *pe = mc_registry_find(o->model);
        if (!mc_registry_is_cached(pe)) fprintf(stderr, "mobileclip: downloading %s\n", pe->name);
    }
    if (mc_registry_resolve(o->model, allow, &dp, path, sizeof path, &e, &err)) return cli_error(&err);
    mc_model_params mp = mc_model_default_params();
    if (cli_parse_weights(o->weights, &mp.weight_dtype)) return 1;
    mp.config_path = o->config;
    mp.vocab_path = o->vocab;
    mp.model_name = e ? e->name : NULL;
    mp.load_image_tower = o->image;
    mp.load_text_tower = o->text;
    mp.reparameterize = o->reparameterize;
    if (mc_model_load(path, &mp, out, &err)) return cli_error(&err);
    if (resolved_out) snprintf(resolved_out, cap, "%s", path);
    if (name_out) *name_out = e ? e->name : NULL;
    return 0;
}

int cli_context_new(const mc_model *model, int threads, int max_batch, mc_context **out) {
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = threads;
    cp.max_batch = max_batch;
    mc_error err;
    if (mc_context_new(model, &cp, out, &err) != MC_OK) return cli_error(&err);
    return 0;
}
