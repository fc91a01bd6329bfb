/*
 * cli.h - shared pieces of the mobileclip command-line tool: the command
 * table, the option parser (options may come before or after positional
 * arguments; "--" ends options) and error printing.
 */
#ifndef MC_CLI_H
#define MC_CLI_H

#include "mobileclip.h"

#include <stdio.h>

typedef struct cli_opt {
    const char *name;     /* long name without "--", e.g. "vocab" */
    char short_name;      /* e.g. 'm', or 0 */
    int takes_value;      /* 1: "--vocab F" or "--vocab=F" */
    int repeatable;       /* 1: may be given several times */
    const char *help;     /* "FILE  the BPE vocabulary" */
} cli_opt;

#define CLI_MAX_VALUES 64

typedef struct cli_args {
    const cli_opt *opts;
    int n_opts;
    int count[64];                        /* times each option was seen */
    const char *value[64][CLI_MAX_VALUES];/* values, in order */
    const char **pos;                     /* positional arguments */
    int n_pos;
} cli_args;

/* Parses argv[1..argc) (argv[0] is the command name).  Prints an error and
 * returns nonzero on an unknown option or a missing value; "--help"/"-h" sets
 * *want_help. */
int cli_parse(int argc, char **argv, const cli_opt *opts, int n_opts, cli_args *out,
              int *want_help);
void cli_args_free(cli_args *a);
int cli_has(const cli_args *a, const char *name);
const char *cli_get(const cli_args *a, const char *name);          /* last value or NULL */
int cli_get_all(const cli_args *a, const char *name, const char ***values);
/* Prints "usage" then the option table. */
void cli_print_help(FILE *f, const char *usage, const char *about, const cli_opt *opts, int n_opts);
/* Prints "mobileclip: <message>" to stderr for err and returns 1. */
int cli_error(const mc_error *err);
int cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses "a,b,c" into 3 floats. */
int cli_parse_floats3(const char *s, float out[3]);
int cli_parse_int(const char *s, int *out);
/* The options of open_clip's generate() that 'caption' and 'reinforce' share: a block of
 * cli_opt entries and their parser, which changes only the fields whose options are given
 * (so a command sets its own defaults first). */
#define CLI_GENERATE_OPTS                                                                                          \
    {"generation-type", 0, 1, 0, "T      greedy, beam_search, top_k or top_p"},                                     \
    {"top-p", 0, 1, 0, "P      top_p sampling mass"},                                                             \
    {"top-k", 0, 1, 0, "K      top_k sampling size"},                                                             \
    {"temperature", 0, 1, 0, "T      sampling temperature"},                                                      \
    {"repetition-penalty", 0, 1, 0, "R      logits of tokens already generated are divided (or multiplied) by R"}, \
    {"seq-len", 0, 1, 0, "N      most tokens per caption, SOT and EOT included"},                                 \
    {"min-seq-len", 0, 1, 0, "N      EOT is banned below N tokens"},                                              \
    {"fixed-output-length", 0, 0, 0, "      pad the token ids of every caption to --seq-len"},                    \
    {"num-beams", 0, 1, 0, "N      beam search width"},                                                           \
    {"num-beam-groups", 0, 1, 0, "N      beam groups"}
int cli_generate_params(const cli_args *a, mc_generate_params *p);
/* A CoCa captioner ('caption', 'reinforce') and the tokenizer that decodes its ids: vocab, else
 * the vocabulary beside the captioner, else the default search.  Prints the error and returns
 * the exit status (0: *cap and *tok are set; else both NULL). */
int cli_captioner_load(const char *path, const char *vocab, mc_captioner **cap, mc_tokenizer **tok);
/* For commands that decode images sample after sample (the data loader):
 * keeps image-sized buffers in the heap instead of mapping and unmapping them
 * for every sample (page faults were 40 % of a re-applied augmentation). */
void cli_keep_heap(void);

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
} cli_command;

/* Commands, one file each (cli/cmd_*.c). */
int cmd_tokenize(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_embed_image(int argc, char **argv);
int cmd_embed_text(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_shard(int argc, char **argv);
int cmd_augment(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_reinforce(int argc, char **argv);
int cmd_train_step_check(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_train(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_caption(int argc, char **argv);

#endif
