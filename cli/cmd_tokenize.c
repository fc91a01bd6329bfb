/*
 * cmd_tokenize.c - the 'tokenize' command: prints the CLIP token ids of
 * texts given as arguments or read one a line from a file (or stdin).
 */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt opts[] = {
    {"vocab", 'v', 1, 0, "FILE   the BPE vocabulary (default: $" MC_VOCAB_ENV ", ./" MC_VOCAB_FILENAME
                          ", the install's share folder)"},
    {"context-length", 'c', 1, 0, "N      ids per text (default 77); longer texts are cut, EOT kept last"},
    {"file", 'f', 1, 1, "FILE   read texts from FILE, one a line ('-': standard input)"},
};
#define N_OPTS ((int)(sizeof opts / sizeof opts[0]))

static int print_ids(const mc_tokenizer *tok, const char *text, size_t len, int ctx, int32_t *ids,
                     const char *where) {
    mc_error err;
    mc_error_clear(&err);
    if (mc_tokenizer_encode_n(tok, text, len, ctx, ids, &err) != MC_OK) {
        if (where) return cli_errorf("%s: %s", where, err.message);
        return cli_error(&err);
    }
    for (int i = 0; i < ctx; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    return 0;
}

static int tokenize_file(const mc_tokenizer *tok, const char *path, int ctx, int32_t *ids) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return cli_errorf("%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        char where[4200];
        snprintf(where, sizeof where, "%s:%ld", path, lineno);
        if ((rc = print_ids(tok, line, len, ctx, ids, where)) != 0) break;
    }
    if (!rc && ferror(f)) rc = cli_errorf("%s: read error", path);
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    cli_args a;
    int help;
    if (cli_parse(argc, argv, opts, N_OPTS, &a, &help)) { cli_args_free(&a); return 2; }
    if (help) {
        cli_print_help(stdout, "mobileclip tokenize [--vocab FILE] [--context-length N] TEXT... | --file FILE",
                       "Prints the CLIP token ids of each text on one line: start of text, the BPE\n"
                       "tokens, end of text, zero padding.",
                       opts, N_OPTS);
        cli_args_free(&a);
        return 0;
    }
    int ctx = MC_CONTEXT_LENGTH;
    const char *cl = cli_get(&a, "context-length");
    if (cl && (cli_parse_int(cl, &ctx) || ctx < 1 || ctx > 1 << 20)) {
        cli_args_free(&a);
        return cli_errorf("--context-length: expected a positive integer, got '%s'", cl);
    }
    const char **files = NULL;
    int n_files = cli_get_all(&a, "file", &files);
    if (a.n_pos == 0 && n_files == 0) {
        cli_args_free(&a);
        return cli_errorf("no text given (see 'mobileclip tokenize --help')");
    }
    mc_error err;
    mc_error_clear(&err);
    mc_tokenizer *tok = NULL;
    if (mc_tokenizer_load(cli_get(&a, "vocab"), &tok, &err) != MC_OK) {
        cli_args_free(&a);
        return cli_error(&err);
    }
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    int rc = ids ? 0 : cli_errorf("out of memory");
    for (int i = 0; !rc && i < a.n_pos; i++) rc = print_ids(tok, a.pos[i], strlen(a.pos[i]), ctx, ids, NULL);
    for (int i = 0; !rc && i < n_files; i++) rc = tokenize_file(tok, files[i], ctx, ids);
    free(ids);
    mc_tokenizer_free(tok);
    cli_args_free(&a);
    return rc;
}
