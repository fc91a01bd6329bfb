/*
 * args.c - the CLI's option parser and error helpers (see cli.h).
 */
#include "cli.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int find_long(const cli_opt *opts, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) return i;
    return -1;
}

static int find_short(const cli_opt *opts, int n, char c) {
    for (int i = 0; i < n; i++)
        if (opts[i].short_name && opts[i].short_name == c) return i;
    return -1;
}

int cli_parse(int argc, char **argv, const cli_opt *opts, int n_opts, cli_args *out,
              int *want_help) {
    memset(out, 0, sizeof *out);
    out->opts = opts;
    out->n_opts = n_opts;
    *want_help = 0;
    out->pos = calloc((size_t)argc + 1, sizeof *out->pos);
    if (!out->pos) return cli_errorf("out of memory");
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) { out->pos[out->n_pos++] = a; continue; }
        if (!strcmp(a, "--")) { only_pos = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { *want_help = 1; continue; }
        int idx;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            idx = find_long(opts, n_opts, a + 2, len);
            if (idx < 0) return cli_errorf("unknown option '%.*s' (see --help)", (int)len + 2, a);
            if (eq) {
                if (!opts[idx].takes_value) return cli_errorf("option '--%s' takes no value", opts[idx].name);
                val = eq + 1;
            }
        } else {
            idx = find_short(opts, n_opts, a[1]);
            if (idx < 0) return cli_errorf("unknown option '%s' (see --help)", a);
            if (a[2]) {
                if (!opts[idx].takes_value) return cli_errorf("option '-%c' takes no value", a[1]);
                val = a + 2;
            }
        }
        if (opts[idx].takes_value && !val) {
            if (i + 1 >= argc) return cli_errorf("option '--%s' needs a value", opts[idx].name);
            val = argv[++i];
        }
        if (out->count[idx] > 0 && !opts[idx].repeatable && !opts[idx].takes_value)
            continue;
        if (out->count[idx] >= CLI_MAX_VALUES)
            return cli_errorf("option '--%s' given too many times", opts[idx].name);
        out->value[idx][out->count[idx]++] = val;
    }
    return 0;
}

void cli_args_free(cli_args *a) {
    free(a->pos);
    a->pos = NULL;
}

static int opt_index(const cli_args *a, const char *name) {
    return find_long(a->opts, a->n_opts, name, strlen(name));
}

int cli_has(const cli_args *a, const char *name) {
    int i = opt_index(a, name);
    return i >= 0 && a->count[i] > 0;
}

const char *cli_get(const cli_args *a, const char *name) {
    int i = opt_index(a, name);
    if (i < 0 || a->count[i] == 0) return NULL;
    return a->value[i][a->count[i] - 1];
}

int cli_get_all(const cli_args *a, const char *name, const char ***values) {
    int i = opt_index(a, name);
    if (i < 0) { *values = NULL; return 0; }
    *values = (const char **)a->value[i];
    return a->count[i];
}

void cli_print_help(FILE *f, const char *usage, const char *about, const cli_opt *opts, int n_opts) {
    fprintf(f, "usage: %s\n\n%s\n", usage, about);
    if (n_opts) fprintf(f, "\noptions:\n");
    for (int i = 0; i < n_opts; i++) {
        char flag[64];
        if (opts[i].short_name)
            snprintf(flag, sizeof flag, "-%c, --%s", opts[i].short_name, opts[i].name);
        else
            snprintf(flag, sizeof flag, "    --%s", opts[i].name);
        fprintf(f, "  %-22s %s\n", flag, opts[i].help ? opts[i].help : "");
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "show this help");
}

int cli_error(const mc_error *err) {
    fprintf(stderr, "mobileclip: %s\n", err->message[0] ? err->message : mc_status_string(err->status));
    return 1;
}

int cli_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mobileclip: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_parse_floats3(const char *s, float out[3]) {
    char *end;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        out[i] = strtof(s, &end);
        if (end == s || errno) return -1;
        s = end;
        if (i < 2) {
            if (*s != ',') return -1;
            s++;
        }
    }
    return *s ? -1 : 0;
}

int cli_parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < -2147483647L || v > 2147483647L) return -1;
    *out = (int)v;
    return 0;
}

static int gen_float(const cli_args *a, const char *name, float *out) {
    const char *s = cli_get(a, name);
    if (!s) return 0;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s || *end || errno) return cli_errorf("--%s: expected a number, got '%s'", name, s);
    *out = v;
    return 0;
}

static int gen_int(const cli_args *a, const char *name, int *out) {
    const char *s = cli_get(a, name);
    if (s && cli_parse_int(s, out)) return cli_errorf("--%s: expected an integer, got '%s'", name, s);
    return 0;
}

int cli_captioner_load(const char *path, const char *vocab, mc_captioner **cap, mc_tokenizer **tok) {
    mc_error err;
    mc_error_clear(&err);
    *cap = NULL;
    *tok = NULL;
    if (mc_captioner_load(path, cap, &err) != MC_OK) return cli_error(&err);
    char vpath[4096];
    if (!vocab && mc_tokenizer_find_vocab(path, vpath, sizeof vpath, &err) == MC_OK) vocab = vpath;
    mc_error_clear(&err);
    if (mc_tokenizer_load(vocab, tok, &err) != MC_OK) {
        mc_captioner_free(*cap);
        *cap = NULL;
        return cli_error(&err);
    }
    return 0;
}

int cli_generate_params(const cli_args *a, mc_generate_params *p) {
    const char *gt = cli_get(a, "generation-type");
    if (gt) {
        if (!strcmp(gt, "greedy")) p->type = MC_GEN_GREEDY;
        else if (!strcmp(gt, "beam_search")) p->type = MC_GEN_BEAM_SEARCH;
        else if (!strcmp(gt, "top_k")) p->type = MC_GEN_TOP_K;
        else if (!strcmp(gt, "top_p")) p->type = MC_GEN_TOP_P;
        else return cli_errorf("--generation-type: expected greedy, beam_search, top_k or top_p, got '%s'", gt);
    }
    if (cli_has(a, "fixed-output-length")) p->fixed_output_length = 1;
    return gen_float(a, "top-p", &p->top_p) || gen_float(a, "temperature", &p->temperature) ||
           gen_float(a, "repetition-penalty", &p->repetition_penalty) || gen_int(a, "top-k", &p->top_k) ||
           gen_int(a, "seq-len", &p->seq_len) || gen_int(a, "min-seq-len", &p->min_seq_len) ||
           gen_int(a, "num-beams", &p->num_beams) || gen_int(a, "num-beam-groups", &p->num_beam_groups);
}

void cli_keep_heap(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}
