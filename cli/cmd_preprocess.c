/*
 * cmd_preprocess.c - the 'preprocess' command: decodes one image, resizes,
 * crops and normalises it as a model's image transform does, and writes the
 * float32 [3, S, S] tensor as a .npy file.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const cli_opt opts[] = {
    {"model", 'm', 1, 0, "NAME  take the preprocessing of an official model (see below)"},
    {"size", 0, 1, 0, "S     output side in pixels (default 256)"},
    {"interp", 0, 1, 0, "I     bilinear (default) or bicubic"},
    {"mean", 0, 1, 0, "a,b,c per-channel mean (default 0,0,0)"},
    {"std", 0, 1, 0, "a,b,c per-channel std (default 1,1,1)"},
    {"squash", 0, 0, 0, "      resize both sides to S instead of shortest side + centre crop"},
    {"no-exif", 0, 0, 0, "      ignore the EXIF orientation tag"},
    {"output", 'o', 1, 0, "FILE  the .npy file to write (required)"},
};
#define N_OPTS ((int)(sizeof opts / sizeof opts[0]))

#define OPENAI_MEAN {0.48145466f, 0.4578275f, 0.40821073f}
#define OPENAI_STD {0.26862954f, 0.26130258f, 0.27577711f}
#define ZERO_MEAN {0.0f, 0.0f, 0.0f}
#define UNIT_STD {1.0f, 1.0f, 1.0f}

typedef struct model_preproc {
    const char *name;
    int size;
    mc_interp interp;
    float mean[3];
    float std[3];
} model_preproc;

/* The image transforms of the released models. */
static const model_preproc known_models[] = {
    {"mobileclip_s0", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"mobileclip_s1", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"mobileclip_s2", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"mobileclip_b", 224, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"mobileclip_blt", 224, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP-S1", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP-S2", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP-B", 224, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP2-S0", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP2-S2", 256, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP2-B", 224, MC_INTERP_BILINEAR, ZERO_MEAN, UNIT_STD},
    {"MobileCLIP2-S3", 256, MC_INTERP_BILINEAR, OPENAI_MEAN, OPENAI_STD},
    {"MobileCLIP2-S4", 256, MC_INTERP_BILINEAR, OPENAI_MEAN, OPENAI_STD},
    {"MobileCLIP2-L-14", 224, MC_INTERP_BICUBIC, OPENAI_MEAN, OPENAI_STD},
};
#define N_MODELS ((int)(sizeof known_models / sizeof known_models[0]))

static const model_preproc *find_model(const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (!strcasecmp(known_models[i].name, name)) return &known_models[i];
    return NULL;
}

/*
 * MODEL CONFIG: a -m value that is not an official name is a model file or
 * folder.  Once mc_model_load is available this is where its configuration
 * decides the preprocessing:
 *     mc_model_params mp = mc_model_default_params();
 *     mp.load_text_tower = 0;
 *     mc_model *m; mc_model_info info;
 *     mc_model_load(arg, &mp, &m, err); mc_model_get_info(m, &info);
 *     *p = info.preprocess; mc_model_free(m);
 */
static int params_from_model_path(const char *arg, mc_preprocess_params *p) {
    (void)p;
    return cli_errorf("'%s' is not an official model name, and reading a model's "
                      "configuration is not available yet; use --size/--interp/--mean/--std",
                      arg);
}

static void usage_models(FILE *f) {
    fprintf(f, "\nofficial model names for -m:\n");
    for (int i = 0; i < N_MODELS; i++)
        fprintf(f, "  %-18s %d %s, mean %g,%g,%g std %g,%g,%g\n", known_models[i].name,
                known_models[i].size,
                known_models[i].interp == MC_INTERP_BICUBIC ? "bicubic" : "bilinear",
                known_models[i].mean[0], known_models[i].mean[1], known_models[i].mean[2],
                known_models[i].std[0], known_models[i].std[1], known_models[i].std[2]);
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
        const model_preproc *m = find_model(v);
        if (m) {
            p.size = m->size;
            p.interp = m->interp;
            memcpy(p.mean, m->mean, sizeof p.mean);
            memcpy(p.std, m->std, sizeof p.std);
        } else if (params_from_model_path(v, &p) != 0) {
            goto done;
        }
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
