/*
 * cmd_preprocess.c - the 'preprocess' command: decodes one image, resizes,
 * crops and normalises it as a model's image transform does, and writes the
 * float32 [3, S, S] tensor as a .npy file.
 */
#include "cli.h"
#include "io/config.h"

#include <sys/stat.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const cli_opt opts[] = {
    {"model", 'm', 1, 0, "MODEL take the preprocessing of a model file/folder or official name"},
    {"size", 0, 1, 0, "S     output side in pixels (default 256)"},
    {"interp", 0, 1, 0, "I     bilinear (default) or bicubic"},
    {"mean", 0, 1, 0, "a,b,c per-channel mean (default 0,0,0)"},
    {"std", 0, 1, 0, "a,b,c per-channel std (default 1,1,1)"},
    {"squash", 0, 0, 0, "      resize both sides to S instead of shortest side + centre crop"},
    {"no-exif", 0, 0, 0, "      ignore the EXIF orientation tag"},
    {"output", 'o', 1, 0, "FILE  the .npy file to write (required)"},
};
#define N_OPTS ((int)(sizeof opts / sizeof opts[0]))

/* -m: an official name (built-in configuration) or a model file or folder
 * (its config.json / open_clip_config.json decides). */
static int params_from_model(const char *arg, mc_preprocess_params *p) {
    mc_config cfg;
    mc_error err;
    mc_error_clear(&err);
    struct stat sb;
    mc_status st = stat(arg, &sb) == 0 ? mc_config_resolve(arg, NULL, NULL, &cfg, NULL, 0, &err)
                                       : mc_config_builtin(arg, &cfg, &err);
    if (st != MC_OK) return cli_error(&err);
    *p = cfg.preprocess;
    return 0;
}

static void usage_models(FILE *f) {
    fprintf(f, "\nofficial model names for -m:\n");
    for (const char *const *n = mc_config_builtin_names(); *n; n++) {
        mc_config c;
        if (mc_config_builtin(*n, &c, NULL) != MC_OK) continue;
        const mc_preprocess_params *q = &c.preprocess;
        fprintf(f, "  %-18s %d %s, mean %g,%g,%g std %g,%g,%g\n", *n, q->size,
                q->interp == MC_INTERP_BICUBIC ? "bicubic" : "bilinear", q->mean[0], q->mean[1],
                q->mean[2], q->std[0], q->std[1], q->std[2]);
    }
    fprintf(f, "\nOptions given after -m override the model's values.\n");
}

int cmd_preprocess(int argc, char **argv) {
    static const char *usage =
        "mobileclip preprocess [-m MODEL | --size S --interp bilinear|bicubic "
        "--mean a,b,c --std a,b,c] [--squash] [--no-exif] IMAGE -o OUT.npy";
    static const char *about =
        "Decodes IMAGE (JPEG, PNG or WebP) as Pillow's open().convert(\"RGB\") does, applies the\n"
        "EXIF orientation, resizes the shortest side to S (Pillow's antialiased filter), crops\n"
        "the centre S x S, divides by 255, normalises, and writes float32 [3, S, S] to OUT.npy.";
    cli_args a;
    int help = 0, rc = 1;
    if (cli_parse(argc, argv, opts, N_OPTS, &a, &help) != 0) {
        cli_args_free(&a);
        return 2;
    }
    if (help) {
        cli_print_help(stdout, usage, about, opts, N_OPTS);
        usage_models(stdout);
        cli_args_free(&a);
        return 0;
    }
    mc_preprocess_params p = mc_preprocess_default_params();
    const char *v;
    if ((v = cli_get(&a, "model"))) {
        if (params_from_model(v, &p) != 0) goto done;
    }
    if ((v = cli_get(&a, "size")) && (cli_parse_int(v, &p.size) != 0 || p.size < 1 || p.size > 16384)) {
        cli_errorf("--size: expected an integer in 1..16384, got '%s'", v);
        goto done;
    }
    if ((v = cli_get(&a, "interp"))) {
        if (!strcasecmp(v, "bilinear")) p.interp = MC_INTERP_BILINEAR;
        else if (!strcasecmp(v, "bicubic")) p.interp = MC_INTERP_BICUBIC;
        else {
            cli_errorf("--interp: expected bilinear or bicubic, got '%s'", v);
            goto done;
        }
    }
    if ((v = cli_get(&a, "mean")) && cli_parse_floats3(v, p.mean) != 0) {
        cli_errorf("--mean: expected three numbers a,b,c, got '%s'", v);
        goto done;
    }
    if ((v = cli_get(&a, "std"))) {
        if (cli_parse_floats3(v, p.std) != 0 || p.std[0] == 0 || p.std[1] == 0 || p.std[2] == 0) {
            cli_errorf("--std: expected three nonzero numbers a,b,c, got '%s'", v);
            goto done;
        }
    }
    if (cli_has(&a, "squash")) p.resize_mode = MC_RESIZE_SQUASH;
    if (cli_has(&a, "no-exif")) p.apply_exif = 0;
    const char *outpath = cli_get(&a, "output");
    if (a.n_pos != 1 || !outpath) {
        fprintf(stderr, "usage: %s\n", usage);
        rc = 2;
        goto done;
    }
    float *buf = malloc((size_t)3 * p.size * p.size * sizeof(float));
    if (!buf) {
        cli_errorf("out of memory");
        goto done;
    }
    mc_error err;
    mc_error_clear(&err);
    if (mc_image_preprocess_file(a.pos[0], &p, buf, &err) != MC_OK) {
        cli_error(&err);
        free(buf);
        goto done;
    }
    int64_t shape[3] = {3, p.size, p.size};
    if (mc_npy_write_f32(outpath, buf, 3, shape, &err) != MC_OK) {
        cli_error(&err);
        free(buf);
        goto done;
    }
    free(buf);
    rc = 0;
done:
    cli_args_free(&a);
    return rc;
}
