/*
 * cmd_reinforce.c - the 'reinforce' command: turns image-text webdataset
 * shards into DataCompDR shards (src/reinforce/, docs/reinforce.md): fresh
 * or reused augmentation parameters, the teachers' embeddings of every
 * augmentation and caption, npz float32 or pth.gz bfloat16, resumable,
 * whole shards per rank under mpirun.
 */
#include "cli.h"
#include "progress.h"
#include "data/shard.h"
#include "reinforce/reinforce.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt rf_opts[] = {
    {"output", 'o', 1, 0, "DIR  output folder (shards, config.json, manifest.jsonl)"},
    {"teachers", 0, 1, 0, "T1,T2  teacher models (official names or paths), in embedding order"},
    {"config", 0, 1, 0, "FILE  augmentation config (Apple's datacompdr12m.json layout, or the object alone)"},
    {"num-augs", 0, 1, 0, "N  augmentations drawn per sample (with --reuse-params: as stored)"},
    {"reuse-params", 0, 1, 0, "SHARDS  take augmentation parameters and synthetic captions from these shards"},
    {"bf16", 0, 0, 0, "       write pth.gz (bfloat16) instead of npz (float32)"},
    {"syn-key", 0, 1, 0, "NAME  syn.json key of the synthetic captions to embed (default syn_text)"},
    {"layout", 0, 1, 0, "L  datacompdr (text_emb holds the synthetic rows) or dfndr (KEY_emb per syn.json list);\n"
                        "                           default: as the --reuse-params shards, else datacompdr"},
    {"seed", 0, 1, 0, "S  seed of the augmentation sampler (default 0)"},
    {"threads", 't', 1, 0, "N  threads per teacher (default: all cores)"},
    {"vocab", 0, 1, 0, "FILE  tokenizer vocabulary for the teachers"},
    {"captioner", 0, 1, 0, "C  CoCa captioner (OpenCLIP files): generate the synthetic captions of fresh samples\n"
                           "                           (syn.json {syn_key: [...]}, in place of the input's)"},
    {"num-syn", 0, 1, 0, "K  synthetic captions per image with --captioner (default 5)"},
    CLI_GENERATE_OPTS,
};
#define N_RF_OPTS (int)(sizeof rf_opts / sizeof rf_opts[0])

typedef struct rf_ui {
    double last;
    int world;
} rf_ui;

static void rf_progress(void *user, const mc_reinforce_progress *p) {
    rf_ui *u = user;
    double now = cli_now_s();
    char who[32] = "";
    if (u->world > 1) snprintf(who, sizeof who, "rank %d: ", p->rank);
    if (p->event == 2) {
        fprintf(stderr, "reinforce: %sshard %zu/%zu %s: already done\n", who, p->shard_index + 1, p->shard_count, p->shard);
        return;
    }
    if (p->event == 0 && now - u->last < 10.0) return;
    u->last = now;
    fprintf(stderr, "reinforce: %sshard %zu/%zu %s: %llu samples, %llu skipped%s, %.2f samples/s\n", who,
            p->shard_index + 1, p->shard_count, p->shard, (unsigned long long)p->samples,
            (unsigned long long)p->skipped, p->event == 1 ? " (done)" : "", p->samples_per_s);
}

/* Splits "a,b" into a malloc'd array of strings pointing into buf. */
static int split_commas(char *buf, char ***out) {
    int n = 1;
    for (char *c = buf; *c; c++) n += *c == ',';
    char **v = calloc((size_t)n, sizeof *v);
    if (!v) return -1;
    int k = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) v[k++] = tok;
    *out = v;
    return k;
}

int cmd_reinforce(int argc, char **argv) {
    static const char usage[] =
        "mobileclip reinforce IN_SHARDS... -o OUT_DIR --teachers T1,T2 --config datacompdr12m.json\n"
        "                            (--num-augs N | --reuse-params SHARDS) [--bf16] [--syn-key NAME] [--seed S]\n"
        "                            [--layout datacompdr|dfndr] [--captioner C [--num-syn K] [generation options]]";
    cli_args a;
    int help = 0;
    if (cli_parse(argc, argv, rf_opts, N_RF_OPTS, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, usage,
                       "Writes DataCompDR shards: per sample the augmentation parameters (paug.json) and the\n"
                       "teachers' L2-normalised embeddings of every augmentation, the caption and every synthetic\n"
                       "caption of syn.json (npz or pth.gz), keeping the input's members. Resumable: finished\n"
                       "shards are recorded in OUT_DIR/.reinforce and skipped when run again. Under mpirun each\n"
                       "rank takes whole shards. With --captioner the synthetic captions of fresh samples are\n"
                       "generated as the released data's: top_p 0.9, fixed output length, --seq-len 30,\n"
                       "--min-seq-len 5, 5 captions (the generation options change that). See docs/reinforce.md.",
                       rf_opts, N_RF_OPTS);
        cli_args_free(&a);
        return 0;
    }
    int rc = 2;
    char **inputs = NULL, **reuse = NULL, **tnames = NULL;
    size_t n_inputs = 0, n_reuse = 0;
    int n_t = 0;
    char *tbuf = NULL;
    mc_model **models = NULL;
    mc_dist *dist = NULL;
    mc_captioner *cap = NULL;
    mc_tokenizer *cap_tok = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_reinforce_params p = mc_reinforce_default_params();
    const char *captioner = cli_get(&a, "captioner");
    if (!captioner && (cli_has(&a, "num-syn") || cli_has(&a, "generation-type") || cli_has(&a, "top-p"))) {
        cli_errorf("reinforce: --num-syn and the generation options need --captioner");
        goto out;
    }
    if (captioner && cli_has(&a, "reuse-params")) {
        cli_errorf("reinforce: --captioner with --reuse-params: the reused shards' synthetic captions are kept; "
                   "caption fresh samples (--num-augs) instead");
        goto out;
    }
    if (cli_get(&a, "num-syn") && (cli_parse_int(cli_get(&a, "num-syn"), &p.num_syn) || p.num_syn < 1 || p.num_syn > 64)) {
        cli_errorf("reinforce: --num-syn must be 1..64");
        goto out;
    }
    if (cli_generate_params(&a, &p.gen)) goto out;
    if (a.n_pos < 1) { cli_errorf("reinforce: no input shards\nusage: %s", usage); goto out; }
    const char *out_dir = cli_get(&a, "output"), *teachers = cli_get(&a, "teachers"), *config = cli_get(&a, "config");
    if (!out_dir || !teachers || !config) {
        cli_errorf("reinforce: -o OUT_DIR, --teachers and --config are required\nusage: %s", usage);
        goto out;
    }
    int num_augs = 0, threads = 0, seed = 0;
    if (cli_get(&a, "num-augs") && (cli_parse_int(cli_get(&a, "num-augs"), &num_augs) || num_augs < 1)) {
        cli_errorf("reinforce: --num-augs must be a positive integer");
        goto out;
    }
    if (cli_get(&a, "threads") && (cli_parse_int(cli_get(&a, "threads"), &threads) || threads < 0)) {
        cli_errorf("reinforce: --threads must be a non-negative integer");
        goto out;
    }
    if (cli_get(&a, "seed") && (cli_parse_int(cli_get(&a, "seed"), &seed) || seed < 0)) {
        cli_errorf("reinforce: --seed must be a non-negative integer");
        goto out;
    }
    const char *layout = cli_get(&a, "layout");
    if (layout && strcmp(layout, "datacompdr") && strcmp(layout, "dfndr")) {
        cli_errorf("reinforce: --layout is datacompdr or dfndr, not '%s'", layout);
        goto out;
    }
    if (!num_augs && !cli_has(&a, "reuse-params")) {
        cli_errorf("reinforce: give --num-augs N (fresh augmentations) or --reuse-params SHARDS");
        goto out;
    }
    /* shard lists */
    for (int i = 0; i < a.n_pos; i++) {
        char **list = NULL;
        size_t n = 0;
        if (mc_shard_expand(a.pos[i], 0, &list, &n, &err) != MC_OK) { rc = cli_error(&err); goto out; }
        char **grown = realloc(inputs, (n_inputs + n) * sizeof *grown);
        if (!grown) { mc_shard_list_free(list, n); cli_errorf("out of memory"); goto out; }
        inputs = grown;
        memcpy(inputs + n_inputs, list, n * sizeof *list);
        n_inputs += n;
        free(list);
    }
    if (cli_get(&a, "reuse-params") &&
        mc_shard_expand(cli_get(&a, "reuse-params"), 0, &reuse, &n_reuse, &err) != MC_OK) {
        rc = cli_error(&err);
        goto out;
    }
    /* teachers */
    tbuf = strdup(teachers);
    if (!tbuf || (n_t = split_commas(tbuf, &tnames)) < 1) { cli_errorf("reinforce: --teachers: no teacher given"); goto out; }
    models = calloc((size_t)n_t, sizeof *models);
    if (!models) { cli_errorf("out of memory"); goto out; }
    cli_keep_heap();
    if (mc_dist_init(&argc, &argv, &dist, &err) != MC_OK) { rc = cli_error(&err); goto out; }
    int world = mc_dist_world(dist);
    for (int k = 0; k < n_t; k++) {
        cli_model_opts mo = {.model = tnames[k], .vocab = cli_get(&a, "vocab"), .image = 1, .text = 1,
                             .reparameterize = 1};
        if ((rc = cli_model_load(&mo, &models[k], NULL, 0, NULL))) goto out;
    }
    if (captioner) {
        if ((rc = cli_captioner_load(captioner, cli_get(&a, "vocab"), &cap, &cap_tok))) goto out;
        p.captioner = cap;
        p.caption_tokenizer = cap_tok;
        p.captioner_name = captioner;
        p.gen.threads = threads;
    }
    rf_ui ui = {0, world};
    p.inputs = (const char *const *)inputs;
    p.n_inputs = n_inputs;
    p.out_dir = out_dir;
    p.teachers = (const mc_model *const *)models;
    p.teacher_names = (const char *const *)tnames;
    p.n_teachers = n_t;
    p.config_path = config;
    p.num_augs = num_augs;
    p.reuse = (const char *const *)reuse;
    p.n_reuse = n_reuse;
    p.bf16 = cli_has(&a, "bf16");
    if (cli_get(&a, "syn-key")) p.syn_key = cli_get(&a, "syn-key");
    if (layout) p.layout = !strcmp(layout, "dfndr") ? MC_REINFORCE_LAYOUT_DFNDR : MC_REINFORCE_LAYOUT_DATACOMPDR;
    p.seed = (uint64_t)seed;
    p.threads = threads;
    p.dist = dist;
    p.progress = rf_progress;
    p.user = &ui;
    mc_reinforce_stats stats;
    double cpu0 = cli_cpu_s();
    mc_status st = mc_reinforce_run(&p, &stats, &err);
    double cpu = cli_cpu_s() - cpu0;
    if (st != MC_OK) {
        if (world > 1) {
            fprintf(stderr, "mobileclip: rank %d of %d: %s\n", mc_dist_rank(dist), world, err.message);
            fflush(stderr);
            mc_dist_abort(dist, 1);
        }
        rc = cli_error(&err);
        goto out;
    }
    printf("reinforce: %s%llu shards written (%llu done before), %llu samples, %llu skipped, %.1f s, %.2f samples/s "
           "(%.1f CPU s, %.3f CPU s per sample)\n",
           world > 1 ? "this rank: " : "", (unsigned long long)stats.shards_written,
           (unsigned long long)stats.shards_done_before, (unsigned long long)stats.samples,
           (unsigned long long)stats.skipped, stats.seconds,
           stats.seconds > 0 ? (double)stats.samples / stats.seconds : 0.0, cpu,
           stats.samples ? cpu / (double)stats.samples : 0.0);
    if (stats.skipped) fprintf(stderr, "reinforce: last skipped: %s\n", stats.last_skip.message);
    rc = 0;
out:
    if (models)
        for (int k = 0; k < n_t; k++) mc_model_free(models[k]);
    free(models);
    mc_tokenizer_free(cap_tok);
    mc_captioner_free(cap);
    free(tnames);
    free(tbuf);
    mc_shard_list_free(inputs, n_inputs);
    mc_shard_list_free(reuse, n_reuse);
    mc_dist_finish(dist);
    cli_args_free(&a);
    return rc;
}
