/*
 * main.c - the mobileclip command-line tool: dispatches to one command per
 * file (cli/cmd_*.c).  The CLI prints and exits; the library never does.
 */
#include "cli.h"

#include <string.h>

static const cli_command commands[] = {
    {"tokenize", "print the CLIP token ids of texts", cmd_tokenize},
    {"preprocess", "decode, resize, crop and normalise an image into a .npy tensor", cmd_preprocess},
    {"info", "open and validate a model; print its format, config and sizes", cmd_info},
    {"embed-image", "embed images into a .npy or JSON lines", cmd_embed_image},
    {"embed-text", "embed texts into a .npy or JSON lines", cmd_embed_text},
    {"classify", "zero-shot classification of images against labels", cmd_classify},
    {"index", "index folders of photos into an SQLite file (incremental; docs/search.md)", cmd_index},
    {"search", "search an index by text or image; --bench times the scan", cmd_search},
    {"eval", "zero-shot accuracy on an ImageFolder tree, image-text retrieval on shards", cmd_eval},
    {"convert", "write a model as one safetensors file (f32, f16 or bf16)", cmd_convert},
    {"list", "list the official models and what is in the cache", cmd_list},
    {"shard", "'shard ls SHARD...': read DataCompDR webdataset shards and summarise them", cmd_shard},
    {"augment", "re-apply a stored DataCompDR augmentation of one sample; write .npy or .png", cmd_augment},
    {"reinforce", "turn image-text shards into DataCompDR shards: augmentations and teacher embeddings", cmd_reinforce},
    {"train", "train a model (open_clip_train's flags): plain CLIP or reinforced on DataCompDR shards", cmd_train},
    {"serve", "an HTTP server: web page, embeddings, classification (docs/serve.md)", cmd_serve},
    {"report", "an HTML page of plots of one or more training runs (train.jsonl, results.jsonl)", cmd_report},
    {"train-step-check", "run a training fixture folder and compare loss, gradients, states", cmd_train_step_check},
    {"bench-train", "time full training steps of a full-size model with random weights", cmd_bench_train},
    {"bench", "time the encoders on random inputs (built-in architectures need no download)", cmd_bench},
};

static void usage(FILE *f) {
    fprintf(f, "mobileclip %s - MobileCLIP and MobileCLIP2 in C\n\n"
               "usage: mobileclip COMMAND [options] [arguments]\n\ncommands:\n", mc_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'mobileclip COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("mobileclip %s\n", mc_version()); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "mobileclip: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
