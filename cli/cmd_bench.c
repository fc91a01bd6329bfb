/*
 * cmd_bench.c - the 'bench' command: encoder throughput of a model (a
 * checkpoint, or a built-in architecture with seeded random weights) on
 * random inputs, per tower, batch size and thread count: ms per item (min and
 * median over runs), GFLOP/s from the tower's multiply-accumulate count, and
 * the ratio to an SGEMM peak measured in the same run.  Prints one line per
 * measurement; the first line describes the machine.
 */
#include "cli.h"
#include "io/config.h"
#include "progress.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/synth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const cli_opt bench_opts[] = {
    {"path", 'm', 1, 0, "PATH    a checkpoint file or model folder"},
    {"model", 0, 1, 0, "NAME    a built-in architecture with random weights (mobileclip_s0, mobileclip_s1,\n"
                       "                 mobileclip_s2, mobileclip_b, MobileCLIP2-S0/S2/B/S3/S4/L-14)"},
    {"config", 'c', 1, 0, "FILE    config for -m (default: beside the model)"},
    {"tower", 0, 1, 0, "T       image, text or both (default both)"},
    {"batch", 'b', 1, 0, "N[,N]   batch sizes (default 1)"},
    {"threads", 't', 1, 0, "N[,N]   thread counts (default 1)"},
    {"runs", 'r', 1, 0, "N       timed runs per measurement (default 5)"},
    {"warmup", 'w', 1, 0, "N       untimed runs first (default 1)"},
    {"budget", 0, 1, 0, "S       stop a measurement's timed runs after S seconds (at least one run; default none)"},
    {"contexts", 0, 1, 0, "K       K contexts encode at once, each on its own batch with --threads threads:\n"
                          "                 throughput of a many-core machine (ms per item over all; default 1)"},
    {"seed", 0, 1, 0, "N       seed of the random weights and inputs (default 1)"},
    CLI_WEIGHTS_OPT,
    {"gemm-size", 0, 1, 0, "N       side of the square SGEMM for the peak (default 1024)"},
};
#define N_BENCH_OPTS (int)(sizeof bench_opts / sizeof bench_opts[0])

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* "1,16" -> {1, 16}; returns the count or -1. */
static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int v;
        if (n == cap || cli_parse_int(tok, &v) || v < 1) return -1;
        out[n++] = v;
    }
    return n ? n : -1;
}

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) break;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(out, cap, "%s", c);
        break;
    }
    fclose(f);
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

/* Best GFLOP/s of an n x n x n SGEMM on the current thread count. */
static double sgemm_peak(int n) {
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(rng_next(&s) >> 40) / 16777216.0f - 0.5f;
        b[i] = (float)(rng_next(&s) >> 40) / 16777216.0f - 0.5f;
    }
    double best = 1e30, spent = 0;
    for (int r = 0; r < 5 && (r < 2 || spent < 2.0); r++) {   /* at least 2 tries, at most ~2 s */
        double t0 = cli_now_s();
        mc_gemm(0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = cli_now_s() - t0;
        spent += t;
        if (t < best) best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * n * n * (double)n / best / 1e9;
}

typedef struct bench_cfg {
    const char *label;
    int batches[16], nb;
    int threads[16], nt;
    int runs, warmup;
    double budget;     /* seconds of timed runs per measurement; 0 = no limit */
    uint64_t seed;
    double peak[16];   /* best SGEMM GFLOP/s per thread count so far */
    int gemm_n;
    int contexts;      /* contexts encoding concurrently (each with threads[ti] threads) */
} bench_cfg;

/* K contexts, each on its own application thread, run the same batch between
 * two barriers per run: the time of a run is from the first barrier to the
 * last context finishing. */
typedef struct bench_par {
    const mc_model *m;
    int image, n, runs, warmup, threads, k;
    const float *pix;
    const int32_t *tok;
    size_t out_per_ctx;
    float *out;
    double *times;            /* [warmup + runs], written by context 0 */
    pthread_barrier_t bar;
    pthread_mutex_t lock;     /* start gate: opened once every thread exists */
    pthread_cond_t open_cv;
    int open, abort;
    mc_status st[64];
    char err[64][sizeof(((mc_error *)0)->message)];
} bench_par;

typedef struct bench_arg {
    bench_par *p;
    int id;
} bench_arg;

static void *bench_worker(void *arg) {
    bench_arg *ba = arg;
    bench_par *p = ba->p;
    int id = ba->id;
    pthread_mutex_lock(&p->lock);
    while (!p->open) pthread_cond_wait(&p->open_cv, &p->lock);
    int stop = p->abort;
    pthread_mutex_unlock(&p->lock);
    if (stop) return NULL;
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = p->threads;
    cp.max_batch = p->n;
    mc_context *ctx = NULL;
    mc_error err;
    p->st[id] = mc_context_new(p->m, &cp, &ctx, &err);
    if (p->st[id] != MC_OK) snprintf(p->err[id], sizeof p->err[id], "%s", err.message);
    float *out = p->out + (size_t)id * p->out_per_ctx;
    for (int r = 0; r < p->warmup + p->runs; r++) {
        pthread_barrier_wait(&p->bar);
        double t0 = cli_now_s();
        if (ctx && p->st[id] == MC_OK) {
            p->st[id] = p->image ? mc_encode_image(ctx, p->pix, p->n, 1, out) : mc_encode_text(ctx, p->tok, p->n, 1, out);
            if (p->st[id] != MC_OK) snprintf(p->err[id], sizeof p->err[id], "%s", mc_context_last_error(ctx)->message);
        }
        pthread_barrier_wait(&p->bar);
        if (id == 0) p->times[r] = cli_now_s() - t0;
    }
    mc_context_free(ctx);
    return NULL;
}

/* Runs K contexts concurrently; fills times[0..runs) (sorted by the caller). */
static int bench_concurrent(const mc_model *m, int image, int n, int threads, int k, const float *pix,
                            const int32_t *tok, size_t out_per_item, bench_cfg *bc, double *times) {
    bench_par *p = calloc(1, sizeof *p);
    double *all = calloc((size_t)(bc->warmup + bc->runs), sizeof *all);
    pthread_t th[64];
    bench_arg args[64];
    if (!p || !all) { free(p); free(all); return cli_errorf("bench: out of memory"); }
    p->m = m, p->image = image, p->n = n, p->runs = bc->runs, p->warmup = bc->warmup, p->threads = threads, p->k = k;
    p->pix = pix, p->tok = tok, p->out_per_ctx = out_per_item * (size_t)n, p->times = all;
    p->out = malloc(sizeof(float) * p->out_per_ctx * (size_t)k);
    if (!p->out || pthread_barrier_init(&p->bar, NULL, (unsigned)k)) {
        free(p->out); free(p); free(all);
        return cli_errorf("bench: cannot set up %d contexts", k);
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->open_cv, NULL);
    int started = 0;
    for (int i = 0; i < k; i++) {
        args[i].p = p, args[i].id = i;
        if (pthread_create(&th[i], NULL, bench_worker, &args[i])) break;
        started++;
    }
    int rc = 0;
    /* the barrier counts k parties: with fewer threads, the started ones leave at the gate */
    pthread_mutex_lock(&p->lock);
    p->open = 1;
    p->abort = started < k;
    pthread_cond_broadcast(&p->open_cv);
    pthread_mutex_unlock(&p->lock);
    if (started < k) rc = cli_errorf("bench: cannot start %d threads", k);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < k && !rc; i++)
        if (p->st[i] != MC_OK) rc = cli_errorf("bench: context %d: %s", i, p->err[i]);
    if (!rc) memcpy(times, all + bc->warmup, sizeof(double) * (size_t)bc->runs);
    pthread_barrier_destroy(&p->bar);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->open_cv);
    free(p->out); free(p); free(all);
    return rc;
}

/* One benchmark text of ctx tokens: SOT, random tokens, EOT at position 24
 * (a typical caption), zero padding. */
#define BENCH_TEXT_EOT 24
static void bench_text_row(int32_t *t, int ctx, uint64_t *s) {
    for (int pos = 0; pos < ctx; pos++)
        t[pos] = pos == 0 ? MC_TOKEN_SOT : pos < BENCH_TEXT_EOT ? (int32_t)(1 + rng_next(s) % 49000)
               : pos == BENCH_TEXT_EOT ? MC_TOKEN_EOT : 0;
}

/* Times one tower at each batch size and thread count; returns nonzero on error. */
static int bench_tower(const mc_model *m, int image, double macs, bench_cfg *bc) {
    mc_model_info info;
    mc_model_get_info(m, &info);
    int maxb = 1;
    for (int i = 0; i < bc->nb; i++) if (bc->batches[i] > maxb) maxb = bc->batches[i];
    size_t per = image ? (size_t)3 * info.image_size * info.image_size : (size_t)info.context_length;
    float *pix = image ? malloc(sizeof(float) * per * maxb) : NULL;
    int32_t *tok = image ? NULL : malloc(sizeof(int32_t) * per * maxb);
    float *out = malloc(sizeof(float) * (size_t)info.embed_dim * maxb);
    double *times = malloc(sizeof(double) * (bc->runs > 0 ? bc->runs : 1));
    if ((image ? !pix : !tok) || !out || !times) {
        free(pix); free(tok); free(out); free(times);
        return cli_errorf("bench: out of memory for inputs");
    }
    uint64_t s = bc->seed * 2654435761u + 12345;
    if (image)
        for (size_t i = 0; i < per * maxb; i++) pix[i] = (float)(rng_next(&s) >> 40) / 16777216.0f;
    else
        for (int b = 0; b < maxb; b++) bench_text_row(tok + (size_t)b * per, (int)per, &s);
    int rc = 0;
    for (int ti = 0; ti < bc->nt && !rc; ti++) {
        for (int bi = 0; bi < bc->nb && !rc; bi++) {
            int n = bc->batches[bi];
            /* the machine is shared: re-measure the peak next to each measurement, keep the best */
            mc_kernels_set_threads(bc->threads[ti] * bc->contexts);
            double pk = sgemm_peak(bc->gemm_n);
            if (pk > bc->peak[ti]) bc->peak[ti] = pk;
            int done = 0;
            double spent = 0;
            if (bc->contexts > 1) {
                rc = bench_concurrent(m, image, n, bc->threads[ti], bc->contexts, pix, tok, (size_t)info.embed_dim, bc,
                                      times);
                if (rc) break;
                done = bc->runs;
                n *= bc->contexts;   /* items per run, over all contexts */
                goto report;
            }
            mc_context_params cp = mc_context_default_params();
            cp.n_threads = bc->threads[ti];
            cp.max_batch = n;
            mc_context *ctx = NULL;
            mc_error err;
            if (mc_context_new(m, &cp, &ctx, &err) != MC_OK) { rc = cli_error(&err); break; }
            for (int r = -bc->warmup; r < bc->runs; r++) {
                double t0 = cli_now_s();
                mc_status st = image ? mc_encode_image(ctx, pix, n, 1, out) : mc_encode_text(ctx, tok, n, 1, out);
                double t = cli_now_s() - t0;
                if (st != MC_OK) { rc = cli_error(mc_context_last_error(ctx)); break; }
                if (r < 0) continue;
                times[done++] = t;
                spent += t;
                if (bc->budget > 0 && spent >= bc->budget) break;
            }
            mc_context_free(ctx);
            if (rc) break;
        report:
            qsort(times, done, sizeof *times, cmp_double);
            double tmin = times[0];
            double tmed = done % 2 ? times[done / 2] : 0.5 * (times[done / 2 - 1] + times[done / 2]);
            double gflops = 2.0 * macs * n / tmin / 1e9;
            char ctxs[32] = "";
            if (bc->contexts > 1) snprintf(ctxs, sizeof ctxs, " contexts=%d", bc->contexts);
            printf("bench model=%s tower=%s batch=%d threads=%d%s ms_min=%.2f ms_median=%.2f gflops=%.2f peak_ratio=%.3f\n",
                   bc->label, image ? "image" : "text", bc->batches[bi], bc->threads[ti], ctxs, tmin * 1e3 / n,
                   tmed * 1e3 / n, gflops, bc->peak[ti] > 0 ? gflops / bc->peak[ti] : 0.0);
            fflush(stdout);
        }
    }
    free(pix); free(tok); free(out); free(times);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    cli_args a;
    int help = 0;
    if (cli_parse(argc, argv, bench_opts, N_BENCH_OPTS, &a, &help)) { cli_args_free(&a); return 2; }
    if (help) {
        cli_print_help(stdout,
                       "mobileclip bench (-m PATH | --model NAME) [--tower image|text|both] [--batch N[,N]]\n"
                       "                 [--threads N[,N]] [--contexts K] [--runs N] [--warmup N] [--budget S] [--weights T]",
                       "Times the encoders (no preprocessing, no tokenizing) on random inputs.  With\n"
                       "--model the architecture is built in memory with seeded random weights, so no\n"
                       "download is needed; the same loader and kernels run as for a real checkpoint.\n"
                       "Prints a machine line (CPU, cores, kernel set, SGEMM peak per thread count), a\n"
                       "model line, then one line per measurement:\n"
                       "  bench model=M tower=T batch=B threads=N ms_min=.. ms_median=.. gflops=.. peak_ratio=..\n"
                       "(ms per item; GFLOP/s = 2 x multiply-accumulates of the folded network, attention\n"
                       "products included, over the best run; peak_ratio against the best SGEMM rate at\n"
                       "that thread count, re-measured before each line), then the peak resident memory\n"
                       "(bench model=M peak_rss_mb=..) and the best SGEMM rates (machine sgemm_n=..).\n"
                       "With --contexts K > 1, K contexts (sharing the one model) each encode their own\n"
                       "batch at once, on --threads threads each; lines then carry contexts=K, ms per item\n"
                       "is over all K batches, and peak_ratio is against SGEMM on K x threads threads.",
                       bench_opts, N_BENCH_OPTS);
        cli_args_free(&a);
        return 0;
    }
    const char *path = cli_get(&a, "path"), *name = cli_get(&a, "model");
    if (!path && a.n_pos == 1) path = a.pos[0];
    if (!!path == !!name) { cli_args_free(&a); return cli_errorf("bench: give one of -m PATH or --model NAME (see --help)"); }
    const char *tower = cli_get(&a, "tower") ? cli_get(&a, "tower") : "both";
    int do_image = !strcmp(tower, "image") || !strcmp(tower, "both");
    int do_text = !strcmp(tower, "text") || !strcmp(tower, "both");
    if (!do_image && !do_text) { cli_args_free(&a); return cli_errorf("bench: --tower must be image, text or both"); }
    bench_cfg bc;
    memset(&bc, 0, sizeof bc);
    bc.runs = 5;
    bc.warmup = 1;
    bc.seed = 1;
    bc.contexts = 1;
    int gemm_n = 1024, v;
    bc.gemm_n = gemm_n;
    bc.nb = parse_list(cli_get(&a, "batch") ? cli_get(&a, "batch") : "1", bc.batches, 16);
    bc.nt = parse_list(cli_get(&a, "threads") ? cli_get(&a, "threads") : "1", bc.threads, 16);
    int bad = bc.nb < 0 || bc.nt < 0;
    if (cli_get(&a, "runs")) bad |= cli_parse_int(cli_get(&a, "runs"), &bc.runs) || bc.runs < 1;
    if (cli_get(&a, "warmup")) bad |= cli_parse_int(cli_get(&a, "warmup"), &bc.warmup) || bc.warmup < 0;
    if (cli_get(&a, "budget")) {
        char *end;
        bc.budget = strtod(cli_get(&a, "budget"), &end);
        bad |= *end != 0 || bc.budget < 0;
    }
    if (cli_get(&a, "contexts")) bad |= cli_parse_int(cli_get(&a, "contexts"), &bc.contexts) || bc.contexts < 1 || bc.contexts > 64;
    if (cli_get(&a, "seed")) { bad |= cli_parse_int(cli_get(&a, "seed"), &v) || v < 0; bc.seed = (uint64_t)v; }
    if (cli_get(&a, "gemm-size")) bad |= cli_parse_int(cli_get(&a, "gemm-size"), &gemm_n) || gemm_n < 16 || gemm_n > 8192;
    bc.gemm_n = gemm_n;
    if (bad) { cli_args_free(&a); return cli_errorf("bench: bad --batch, --threads, --contexts (1..64), --runs, --warmup, --seed or --gemm-size"); }

    /* machine line, with the SGEMM peak at each thread count */
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("machine cpu=\"%s\" cores=%ld kernels=%s sgemm_n=%d", cpu, sysconf(_SC_NPROCESSORS_ONLN), mc_kernels_name(),
           gemm_n);
    for (int i = 0; i < bc.nt; i++) {
        mc_kernels_set_threads(bc.threads[i] * bc.contexts);
        bc.peak[i] = sgemm_peak(gemm_n);
        printf(" sgemm_gflops_t%d=%.2f", bc.threads[i] * bc.contexts, bc.peak[i]);
    }
    printf("\n");
    fflush(stdout);

    /* the model: built in memory, or loaded from disk; its architecture for the MAC counts */
    mc_error err;
    mc_error_clear(&err);
    mc_arch_spec spec;
    mc_config cfg;
    mc_model *m = NULL;
    mc_model_params mp = mc_model_default_params();
    if (cli_parse_weights(cli_get(&a, "weights"), &mp.weight_dtype)) { cli_args_free(&a); return 2; }
    mp.load_image_tower = do_image;
    mp.load_text_tower = do_text;
    int have_spec = 0;
    double t0 = cli_now_s();
    mc_status st;
    if (name) {
        st = mc_arch_spec_builtin(name, &spec, &cfg, &err);
        mc_checkpoint *ck = NULL;
        if (st == MC_OK) st = mc_synth_checkpoint(&spec, bc.seed, do_image, do_text, &ck, &err);
        if (st == MC_OK) st = mc_model_load_checkpoint(ck, &cfg, &mp, &m, &err);
        mc_checkpoint_close(ck);
        have_spec = st == MC_OK;
        bc.label = cfg.name;
    } else {
        char ckpath[4096];
        mp.config_path = cli_get(&a, "config");
        st = mc_config_resolve(path, mp.config_path, NULL, &cfg, ckpath, sizeof ckpath, &err);
        mc_checkpoint *ck = NULL;
        if (st == MC_OK) st = mc_checkpoint_open(ckpath, &ck, &err);
        if (st == MC_OK) have_spec = mc_arch_spec_infer(ck, &cfg, &spec, NULL) == MC_OK;
        /* the loader's binding without the tokenizer, which the encoders do not need */
        if (st == MC_OK) st = mc_model_load_checkpoint(ck, &cfg, &mp, &m, &err);
        mc_checkpoint_close(ck);
        bc.label = path;
    }
    if (st != MC_OK) { cli_args_free(&a); return cli_error(&err); }
    double load_s = cli_now_s() - t0;
    mc_model_info info;
    mc_model_get_info(m, &info);
    double gi = have_spec && do_image ? mc_arch_macs_image(&spec, 1) : 0;
    /* the positions the text tower runs for the benchmark texts (a causal one stops at the end token) */
    int text_pos = 0;
    if (do_text) {
        int32_t *row = malloc(sizeof(int32_t) * (size_t)info.context_length);
        uint64_t s = 1;
        if (row) {
            bench_text_row(row, info.context_length, &s);
            text_pos = mc_model_text_positions(m, row, 1);
        }
        free(row);
    }
    double gt = have_spec && do_text ? mc_arch_macs_text_run(&spec, 1, text_pos) : 0;
    printf("model name=%s image_arch=%s text_arch=%s image_size=%d", bc.label, info.image_arch, info.text_arch,
           info.image_size);
    if (do_image) printf(" image_params_m=%.2f image_gmac=%.3f", info.n_params_image / 1e6, gi / 1e9);
    if (do_text) printf(" text_params_m=%.2f text_gmac=%.3f text_positions=%d", info.n_params_text / 1e6, gt / 1e9, text_pos);
    static const char *const wnames[MC_WEIGHTS_COUNT] = {"f32", "bf16", "f16", "int8"};
    printf(" weights=%s load_s=%.2f rss_mb=%.0f\n", wnames[mp.weight_dtype], load_s, cli_rss_mb());
    fflush(stdout);

    int rc = 0;
    if (do_image) rc |= bench_tower(m, 1, gi, &bc);
    if (do_text && !rc) rc |= bench_tower(m, 0, gt, &bc);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench model=%s peak_rss_mb=%.0f\n", bc.label, ru.ru_maxrss / 1024.0);
    printf("machine sgemm_n=%d", gemm_n);
    for (int i = 0; i < bc.nt; i++) printf(" sgemm_best_gflops_t%d=%.2f", bc.threads[i] * bc.contexts, bc.peak[i]);
    printf("\n");
    mc_model_free(m);
    cli_args_free(&a);
    return rc;
}
