/*
 * cmd_info.c - the 'info' command: opens a model's checkpoint and config and
 * prints the format, family, architectures, sizes, parameter counts and
 * dtypes; --tensors lists every tensor.
 */
#include "cli.h"
#include "io/config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const cli_opt info_opts[] = {
    {"config", 'c', 1, 0, "FILE   config.json or open_clip_config.json (default: beside the model)"},
    {"name", 'n', 1, 0, "NAME   official model name for a built-in config (e.g. mobileclip_s0)"},
    {"tensors", 't', 0, 0, "       list every tensor: name, dtype, shape"},
};
#define N_INFO_OPTS (int)(sizeof info_opts / sizeof info_opts[0])

static const char *format_name(mc_file_format f) {
    switch (f) {
    case MC_FORMAT_TORCH_ZIP: return "torch.save zip";
    case MC_FORMAT_SAFETENSORS: return "safetensors";
    default: return "unknown";
    }
}

/* Which tower a tensor belongs to, by its name (both layouts). */
static int tower_of(const char *name) {
    static const char *const image[] = {"image_encoder.", "visual."};
    static const char *const text[] = {"text_encoder.", "text.", "transformer.", "token_embedding.",
                                       "positional_embedding", "ln_final.", "text_projection"};
    for (size_t i = 0; i < sizeof image / sizeof image[0]; i++)
        if (!strncmp(name, image[i], strlen(image[i]))) return 0;
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        if (!strncmp(name, text[i], strlen(text[i]))) return 1;
    return 2;
}

static void print_shape(const mc_tensor_info *t) {
    putchar('[');
    for (int k = 0; k < t->ndim; k++) printf("%s%" PRId64, k ? ", " : "", t->shape[k]);
    putchar(']');
}

static void print_count(const char *label, int64_t n) {
    if (n >= 1000000) printf("%-16s %" PRId64 " (%.2f M)\n", label, n, (double)n / 1e6);
    else printf("%-16s %" PRId64 "\n", label, n);
}

int cmd_info(int argc, char **argv) {
    cli_args a;
    int help = 0;
    if (cli_parse(argc, argv, info_opts, N_INFO_OPTS, &a, &help)) { cli_args_free(&a); return 2; }
    if (help) {
        cli_print_help(stdout, "mobileclip info MODEL [--config FILE] [--name NAME] [--tensors]",
                       "Opens a model (a checkpoint file, or a folder holding one and its config) and\n"
                       "prints its format, family, architectures, sizes and parameter counts.",
                       info_opts, N_INFO_OPTS);
        cli_args_free(&a);
        return 0;
    }
    if (a.n_pos != 1) {
        cli_args_free(&a);
        return cli_errorf("info: expected one MODEL argument (see --help)");
    }
    const char *model = a.pos[0];
    int rc = 0;
    mc_error err;
    mc_error_clear(&err);
    mc_config cfg;
    char ckpt_path[4096];
    mc_status cst = mc_config_resolve(model, cli_get(&a, "config"), cli_get(&a, "name"), &cfg, ckpt_path,
                                      sizeof ckpt_path, &err);
    mc_error cfg_err = err;
    /* no config at all is fine for inspecting tensors; a bad explicit one is not */
    int explicit_cfg = cli_get(&a, "config") || cli_get(&a, "name");
    if (cst != MC_OK && (cst != MC_ERR_CONFIG || explicit_cfg)) { cli_args_free(&a); return cli_error(&err); }
    mc_checkpoint *ck = NULL;
    if (mc_checkpoint_open(ckpt_path, &ck, &err) != MC_OK) { cli_args_free(&a); return cli_error(&err); }

    int64_t n_params = 0, per_tower[3] = {0, 0, 0};
    int dtype_seen[MC_DTYPE_COUNT] = {0};
    size_t n = mc_checkpoint_count(ck);
    for (size_t i = 0; i < n; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        n_params += t->numel;
        per_tower[tower_of(t->name)] += t->numel;
        dtype_seen[t->dtype] = 1;
    }
    printf("%-16s %s\n", "checkpoint", ckpt_path);
    printf("%-16s %s\n", "format", format_name(mc_checkpoint_format(ck)));
    if (cst == MC_OK) {
        printf("%-16s %s\n", "config", cfg.source);
        if (cfg.name[0]) printf("%-16s %s\n", "model", cfg.name);
        printf("%-16s %s\n", "family", mc_config_family_name(cfg.family));
        printf("%-16s %s\n", "image arch", cfg.image_arch);
        printf("%-16s %d\n", "image size", cfg.image_size);
        printf("%-16s %s (width %d, %d heads, %d layers, %s)\n", "text arch", cfg.text_arch,
               cfg.text_width, cfg.text_heads, cfg.text_layers, cfg.causal ? "causal" : "bidirectional");
        printf("%-16s %d\n", "context length", cfg.context_length);
        printf("%-16s %d\n", "embed dim", cfg.embed_dim);
        printf("%-16s %d %s %s, mean %g,%g,%g std %g,%g,%g\n", "preprocess", cfg.preprocess.size,
               cfg.preprocess.interp == MC_INTERP_BICUBIC ? "bicubic" : "bilinear",
               cfg.preprocess.resize_mode == MC_RESIZE_SQUASH ? "squash" : "shortest",
               cfg.preprocess.mean[0], cfg.preprocess.mean[1], cfg.preprocess.mean[2],
               cfg.preprocess.std[0], cfg.preprocess.std[1], cfg.preprocess.std[2]);
    } else {
        printf("%-16s none (%s)\n", "config", cfg_err.message);
    }
    printf("%-16s %zu\n", "tensors", n);
    print_count("parameters", n_params);
    print_count("  image tower", per_tower[0]);
    print_count("  text tower", per_tower[1]);
    print_count("  other", per_tower[2]);
    printf("%-16s", "dtypes");
    for (int d = 0; d < MC_DTYPE_COUNT; d++)
        if (dtype_seen[d]) printf(" %s", mc_dtype_name((mc_dtype)d));
    putchar('\n');

    /* Validation: build the whole model and bind every tensor of the file to it,
     * so a missing, unexpected or mis-shaped tensor is reported by name. */
    if (cst == MC_OK) {
        mc_model_params mp = mc_model_default_params();
        mp.config_path = cli_get(&a, "config");
        mp.model_name = cli_get(&a, "name");
        mp.load_tokenizer = 0;
        mc_model *m = NULL;
        if (mc_model_load(model, &mp, &m, &err) != MC_OK) {
            printf("%-16s FAILED\n", "validation");
            cli_error(&err);
            rc = 1;
        } else {
            mc_model_info mi;
            mc_model_get_info(m, &mi);
            printf("%-16s ok: every tensor bound (image %" PRId64 ", text %" PRId64 " parameters)\n",
                   "validation", mi.n_params_image, mi.n_params_text);
            printf("%-16s %g\n", "logit scale", mi.logit_scale);
            mc_model_free(m);
        }
    }

    if (cli_has(&a, "tensors")) {
        printf("\n");
        for (size_t i = 0; i < n; i++) {
            const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
            printf("%-5s ", mc_dtype_name(t->dtype));
            print_shape(t);
            printf("  %s\n", t->name);
        }
    }
    if (cst != MC_OK) {
        fprintf(stderr, "mobileclip: warning: %s\n", cfg_err.message);
    }
    mc_checkpoint_close(ck);
    cli_args_free(&a);
    return rc;
}
