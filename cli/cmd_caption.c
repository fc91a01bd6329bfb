/*
 * cmd_caption.c - the 'caption' command: captions images with a CoCa
 * captioner (OpenCLIP files) as open_clip's generate() does, and prints each
 * caption decoded as the DataCompDR generator decodes it (first sentence,
 * special tokens removed), or one JSON object per image with the captions and
 * their token ids.
 */
#include "cli.h"
#include "core/json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt opts[] = {
    {"model", 'm', 1, 0, "PATH   the captioner: a folder with open_clip_config.json and the weights, or either file"},
    CLI_GENERATE_OPTS,
    {"num", 'n', 1, 0, "N      captions per image (default 1), decoded together; caption k samples with seed S + k"},
    {"seed", 0, 1, 0, "S      sampling seed (default 0)"},
    {"threads", 't', 1, 0, "N      kernel threads (default: one per core)"},
    {"vocab", 'v', 1, 0, "FILE   the BPE vocabulary (default: $" MC_VOCAB_ENV ", beside the model, ./" MC_VOCAB_FILENAME ")"},
    {"json", 0, 0, 0, "      one JSON object per image a line: image, captions, tokens"},
};
#define N_OPTS ((int)(sizeof opts / sizeof opts[0]))

static int parse_params(const cli_args *a, mc_generate_params *p, int *num) {
    int rc = cli_generate_params(a, p);
    if (!rc && cli_get(a, "threads") && cli_parse_int(cli_get(a, "threads"), &p->threads))
        rc = cli_errorf("--threads: expected an integer, got '%s'", cli_get(a, "threads"));
    if (!rc && cli_get(a, "num") && cli_parse_int(cli_get(a, "num"), num))
        rc = cli_errorf("--num: expected an integer, got '%s'", cli_get(a, "num"));
    if (rc) return rc;
    const char *sd = cli_get(a, "seed");
    if (sd) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(sd, &end, 10);
        if (end == sd || *end || errno || sd[0] == '-') return cli_errorf("--seed: expected a non-negative integer, got '%s'", sd);
        p->seed = (uint64_t)v;
    }
    if (*num < 1 || *num > 256) return cli_errorf("--num: expected 1..256, got %d", *num);
    return 0;
}

int cmd_caption(int argc, char **argv) {
    cli_args a;
    int help;
    if (cli_parse(argc, argv, opts, N_OPTS, &a, &help)) { cli_args_free(&a); return 2; }
    if (help) {
        cli_print_help(stdout,
                       "mobileclip caption -m CAPTIONER [--generation-type greedy|beam_search|top_k|top_p] [--top-p P]\n"
                       "                   [--top-k K] [--temperature T] [--repetition-penalty R] [--seq-len N]\n"
                       "                   [--min-seq-len N] [--fixed-output-length] [--num N] [--seed S] [--json] IMAGE...",
                       "Captions each image with an OpenCLIP CoCa captioner as open_clip's generate() does, and\n"
                       "prints the captions decoded as the DataCompDR generator decodes them (first sentence,\n"
                       "special tokens removed): one line per caption, or with --json one object per image.\n"
                       "Defaults are open_clip's generate(): beam_search (6 beams in 3 groups), --seq-len 30,\n"
                       "--min-seq-len 5, --top-p 0.1, --top-k 1, --temperature 1.0, --repetition-penalty 1.0.\n"
                       "The DataCompDR captions: --generation-type top_p --top-p 0.9 --fixed-output-length --num 5.",
                       opts, N_OPTS);
        cli_args_free(&a);
        return 0;
    }
    mc_generate_params p = mc_generate_default_params();
    int num = 1;
    const char *model = cli_get(&a, "model");
    int rc = parse_params(&a, &p, &num);
    if (!rc && !model) rc = cli_errorf("no captioner given (-m PATH; see 'mobileclip caption --help')");
    if (!rc && a.n_pos == 0) rc = cli_errorf("no image given (see 'mobileclip caption --help')");
    if (rc) { cli_args_free(&a); return rc; }

    mc_error err;
    mc_error_clear(&err);
    mc_captioner *cap = NULL;
    mc_tokenizer *tok = NULL;
    if ((rc = cli_captioner_load(model, cli_get(&a, "vocab"), &cap, &tok))) {
        cli_args_free(&a);
        return rc;
    }
    mc_preprocess_params pp;
    mc_captioner_get_preprocess(cap, &pp);
    int ntok = p.seq_len > 0 ? p.seq_len : 1;
    size_t per = (size_t)3 * pp.size * pp.size;
    float *pix = malloc(sizeof(float) * per * (size_t)num);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)num * ntok);
    int *lens = malloc(sizeof(int) * (size_t)num);
    char **texts = calloc((size_t)num, sizeof *texts);
    if (!pix || !ids || !lens || !texts) rc = cli_errorf("out of memory");
    for (int i = 0; !rc && i < a.n_pos; i++) {
        const char *img = a.pos[i];
        if (mc_image_preprocess_file(img, &pp, pix, &err) != MC_OK) { rc = cli_error(&err); break; }
        /* the N captions decode together: the image N times in one call, caption k
           sampling from the stream of seed + k */
        for (int k = 1; k < num; k++) memcpy(pix + (size_t)k * per, pix, sizeof(float) * per);
        if (mc_caption_generate(cap, pix, num, &p, ids, ntok, lens, &err) != MC_OK)
            rc = cli_errorf("%s: %s", img, err.message);
        for (int k = 0; !rc && k < num; k++)
            if (mc_caption_decode(tok, ids + (size_t)k * ntok, lens[k], &texts[k], &err) != MC_OK)
                rc = cli_errorf("%s: %s", img, err.message);
        if (rc) break;
        if (cli_has(&a, "json")) {
            printf("{\"image\": ");
            mc_json_write_str(stdout, img);
            printf(", \"captions\": [");
            for (int k = 0; k < num; k++) {
                if (k) printf(", ");
                mc_json_write_str(stdout, texts[k]);
            }
            printf("], \"tokens\": [");
            for (int k = 0; k < num; k++) {
                printf(k ? ", [" : "[");
                int n = p.fixed_output_length ? ntok : lens[k];
                for (int j = 0; j < n; j++) printf(j ? ", %d" : "%d", ids[(size_t)k * ntok + j]);
                printf("]");
            }
            printf("]}\n");
        } else {
            for (int k = 0; k < num; k++) printf("%s\t%s\n", img, texts[k]);
        }
        fflush(stdout);
        for (int k = 0; k < num; k++) { free(texts[k]); texts[k] = NULL; }
    }
    if (texts)
        for (int k = 0; k < num; k++) free(texts[k]);
    free(texts);
    free(pix);
    free(ids);
    free(lens);
    mc_tokenizer_free(tok);
    mc_captioner_free(cap);
    cli_args_free(&a);
    return rc;
}
