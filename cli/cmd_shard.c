/*
 * cmd_shard.c - the 'shard' command: 'shard ls' reads DataCompDR / DFNDR
 * webdataset shards (brace patterns and "::" lists expanded) and prints per
 * shard the samples, members seen, augmentation counts, embedding shapes and
 * stored dtypes, synthetic-caption keys and skipped samples with reasons.
 */
#include "cli.h"
#include "core/json.h"
#include "data/shard.h"

#include <inttypes.h>
#include <string.h>

static const cli_opt shard_opts[] = {
    {"json", 0, 0, 0, "       one JSON object per shard"},
    {"strict", 0, 0, 0, "       stop at the first bad member or sample (default: skip and count)"},
    {"no-embeddings", 0, 0, 0, "       do not decode npz / pth.gz (faster; shapes not checked)"},
    {"no-image-ok", 0, 0, 0, "       accept samples without an image (DataCompDR not joined with images)"},
};
#define N_SHARD_OPTS (int)(sizeof shard_opts / sizeof shard_opts[0])

#define MAX_KINDS 64

typedef struct tally {
    char name[96];
    uint64_t count;
} tally;

static void tally_add(tally *t, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(t[i].name, name)) { t[i].count++; return; }
    if (*n >= MAX_KINDS) return;
    snprintf(t[*n].name, sizeof t[0].name, "%s", name);
    t[*n].count = 1;
    (*n)++;
}

static const char *dtype_word(mc_dtype d) {
    switch (d) {
    case MC_DTYPE_F32: return "float32";
    case MC_DTYPE_BF16: return "bfloat16";
    case MC_DTYPE_F16: return "float16";
    case MC_DTYPE_F64: return "float64";
    default: return mc_dtype_name(d);
    }
}

static void json_str(const char *s) { mc_json_write_str(stdout, s); }

static void print_tallies(const char *label, const tally *t, int n, int json) {
    if (json) {
        printf(", \"%s\": {", label);
        for (int i = 0; i < n; i++) {
            printf("%s", i ? ", " : "");
            json_str(t[i].name);
            printf(": %" PRIu64, t[i].count);
        }
        printf("}");
        return;
    }
    printf("  %-14s", label);
    if (!n) printf(" -");
    for (int i = 0; i < n; i++) printf("%s %s (%" PRIu64 ")", i ? "," : "", t[i].name, t[i].count);
    printf("\n");
}

static int list_shard(const char *path, const mc_shard_params *p, int json) {
    mc_error err;
    mc_error_clear(&err);
    mc_shard_reader *r;
    if (mc_shard_open(path, p, &r, &err) != MC_OK) return cli_error(&err);
    tally members[MAX_KINDS], embs[MAX_KINDS], syn[MAX_KINDS], augs[MAX_KINDS], layouts[4];
    int n_members = 0, n_embs = 0, n_syn = 0, n_augs = 0, n_layouts = 0;
    mc_dr_record *rec;
    mc_status st;
    while ((st = mc_shard_next(r, &rec, &err)) == MC_OK && rec) {
        for (size_t i = 0; i < rec->sample->n_members; i++) tally_add(members, &n_members, rec->sample->members[i].ext);
        char buf[160];
        snprintf(buf, sizeof buf, "%zu", rec->n_aug);
        tally_add(augs, &n_augs, buf);
        for (size_t i = 0; i < rec->n_embs; i++) {
            const mc_dr_emb *e = &rec->embs[i];
            snprintf(buf, sizeof buf, "%s.%s [%" PRId64 ", %" PRId64 "] %s", rec->emb_ext, e->name, e->rows, e->dim,
                     dtype_word(e->stored));
            tally_add(embs, &n_embs, buf);
        }
        for (size_t i = 0; i < rec->n_syn; i++) {
            snprintf(buf, sizeof buf, "%s [%zu captions]", rec->syn[i].key, rec->syn[i].n);
            tally_add(syn, &n_syn, buf);
        }
        if (rec->n_embs) tally_add(layouts, &n_layouts, rec->layout == MC_DR_LAYOUT_DFNDR ? "dfndr" : "datacompdr");
        mc_dr_record_free(rec);
    }
    const mc_shard_stats *s = mc_shard_reader_stats(r);
    int rc = 0;
    if (st != MC_OK) rc = cli_error(&err);
    if (json) {
        printf("{\"shard\": ");
        json_str(path);
        printf(", \"samples\": %" PRIu64 ", \"tar_members\": %" PRIu64 ", \"ignored_members\": %" PRIu64
               ", \"skipped\": %" PRIu64, s->samples, s->members, s->members_ignored, s->skipped);
        print_tallies("members", members, n_members, 1);
        print_tallies("augmentations", augs, n_augs, 1);
        print_tallies("embeddings", embs, n_embs, 1);
        print_tallies("layout", layouts, n_layouts, 1);
        print_tallies("synthetic", syn, n_syn, 1);
        printf(", \"skipped_by\": {");
        int first = 1;
        for (int k = 0; k < MC_SKIP_COUNT; k++)
            if (s->skipped_by[k]) {
                printf("%s\"%s\": %" PRIu64, first ? "" : ", ", mc_skip_reason_name((mc_skip_reason)k), s->skipped_by[k]);
                first = 0;
            }
        printf("}");
        if (s->skipped) {
            printf(", \"last_skip\": ");
            json_str(s->last_skip.message);
        }
        if (st != MC_OK) {
            printf(", \"error\": ");
            json_str(err.message);
        }
        printf("}\n");
    } else {
        printf("%s\n", path);
        printf("  %-14s %" PRIu64 " (tar members %" PRIu64 ", ignored %" PRIu64 ")\n", "samples", s->samples,
               s->members, s->members_ignored);
        print_tallies("members", members, n_members, 0);
        print_tallies("augmentations", augs, n_augs, 0);
        print_tallies("embeddings", embs, n_embs, 0);
        print_tallies("layout", layouts, n_layouts, 0);
        print_tallies("synthetic", syn, n_syn, 0);
        printf("  %-14s %" PRIu64, "skipped", s->skipped);
        for (int k = 0; k < MC_SKIP_COUNT; k++)
            if (s->skipped_by[k]) printf(", %s %" PRIu64, mc_skip_reason_name((mc_skip_reason)k), s->skipped_by[k]);
        printf("\n");
        if (s->skipped) printf("  %-14s %s\n", "last skip", s->last_skip.message);
    }
    mc_shard_close(r);
    return rc;
}

int cmd_shard(int argc, char **argv) {
    cli_args a;
    int help = 0;
    if (cli_parse(argc, argv, shard_opts, N_SHARD_OPTS, &a, &help)) { cli_args_free(&a); return 2; }
    const char *usage = "mobileclip shard ls [--json] [--strict] [--no-embeddings] [--no-image-ok] SHARD...";
    if (help || a.n_pos == 0) {
        cli_print_help(help ? stdout : stderr, usage,
                       "Reads DataCompDR / DFNDR webdataset shards and prints per shard: samples, members\n"
                       "seen, augmentations per sample, embedding shapes and stored dtypes, the layout\n"
                       "of the synthetic-caption embeddings, synthetic-caption keys and skipped samples\n"
                       "with their reasons.  SHARD may be a brace pattern and '::'-joined list as\n"
                       "webdataset takes them, e.g. 'shards/{00000000..00000009}.tar'.",
                       shard_opts, N_SHARD_OPTS);
        cli_args_free(&a);
        return help ? 0 : 2;
    }
    if (strcmp(a.pos[0], "ls") != 0) {
        int rc = cli_errorf("shard: unknown subcommand '%s' (only 'ls'; see --help)", a.pos[0]);
        cli_args_free(&a);
        return rc + 1;
    }
    if (a.n_pos < 2) {
        cli_args_free(&a);
        return cli_errorf("shard ls: expected at least one SHARD (see --help)") + 1;
    }
    mc_shard_params p = mc_shard_default_params();
    p.strict = cli_has(&a, "strict");
    p.dr.decode_embeddings = !cli_has(&a, "no-embeddings");
    p.dr.require_image = !cli_has(&a, "no-image-ok");
    int json = cli_has(&a, "json"), rc = 0;
    for (int i = 1; i < a.n_pos; i++) {
        char **list;
        size_t n;
        mc_error err;
        if (mc_shard_expand(a.pos[i], 0, &list, &n, &err) != MC_OK) { rc = cli_error(&err); continue; }
        for (size_t k = 0; k < n; k++)
            if (list_shard(list[k], &p, json)) rc = 1;
        mc_shard_list_free(list, n);
    }
    cli_args_free(&a);
    return rc;
}
