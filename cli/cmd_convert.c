/*
 * cmd_convert.c - the 'convert' command.  --format pt (the default for an
 * output named .pt/.pth/.bin): the checkpoint's unfused tensors under the
 * reference's names as a torch.save file that PyTorch's
 * torch.load(weights_only=True) and the reference model classes load
 * (mc_state_dict_save_pt, model/state_dict.h; training-state tensors left
 * out).  --format safetensors (otherwise): a model to one .safetensors file
 * in f32, f16 or bf16, with its config in the file's metadata:
 *   mobileclip.config       the config JSON text (config.json / open_clip_config.json)
 *   mobileclip.config_file  that file's name (tells the layout: v1 or OpenCLIP)
 *   mobileclip.model_name   the official name, when known
 *   mobileclip.source       the checkpoint file converted
 *   mobileclip.layout       "folded" (default): the loaded model's re-parameterised
 *                           weights (mc_model_export); "original" (--unfolded): the
 *                           checkpoint's own tensors and names, branches not folded
 * Floating-point tensors are converted to the chosen dtype (f16/bf16 round to
 * nearest even); integer tensors are kept as they are.
 */
#include "cli.h"
#include "model/model.h"
#include "model/state_dict.h"
#include "progress.h"
#include "io/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const cli_opt convert_opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (or give it positionally)"},
    {"output", 'o', 1, 0, "OUT.safetensors|OUT.pt  the file to write"},
    {"format", 0, 1, 0, "safetensors|pt  file format (default: pt for OUT.pt/.pth/.bin, else safetensors)"},
    {"dtype", 0, 1, 0, "f32|f16|bf16  storage type of the floating-point tensors (default f32)"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    {"unfolded", 0, 0, 0, "write the checkpoint's original tensors (train-time branches kept)"},
};

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* the checkpoint file of a folder */
static int find_checkpoint(const char *dir, const char *name, char *out, size_t cap) {
    static const char *cand[] = {"open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                                 "model.safetensors", "model.pt", "model.pth", "pytorch_model.bin"};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        snprintf(out, cap, "%s/%s", dir, cand[i]);
        if (is_file(out)) return 0;
    }
    if (name) {
        snprintf(out, cap, "%s/%s.pt", dir, name);
        if (is_file(out)) return 0;
    }
    return -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

static int is_float(mc_dtype d) {
    return d == MC_DTYPE_F32 || d == MC_DTYPE_F16 || d == MC_DTYPE_BF16 || d == MC_DTYPE_F64;
}

/* Converts n float32 values to target (F16/BF16) into a new buffer. */
static void *to_half(mc_dtype target, const float *f, size_t cnt) {
    uint16_t *h = mc_malloc_array(cnt ? cnt : 1, sizeof(uint16_t));
    if (h)
        for (size_t k = 0; k < cnt; k++) h[k] = target == MC_DTYPE_F16 ? mc_f32_to_f16(f[k]) : mc_f32_to_bf16(f[k]);
    return h;
}

/* Loads the model (folding at load) and writes mc_model_export's tensors. */
static int write_folded(const char *ckpt_path, const char *cfg, const char *name, const char *outp,
                        mc_dtype target, size_t *n_out) {
    mc_error err;
    mc_error_clear(&err);
    mc_model_params mp = mc_model_default_params();
    mp.config_path = cfg;
    mp.model_name = name;
    mp.load_tokenizer = 0;
    mc_model *m = NULL;
    mc_st_entry *ents = NULL;
    mc_meta_kv *meta = NULL, *all = NULL;
    size_t n = 0, n_meta = 0;
    void **bufs = NULL;
    int rc = 0;
    if (mc_model_load(ckpt_path, &mp, &m, &err) || mc_model_export(m, &ents, &n, &meta, &n_meta, &err)) {
        rc = cli_error(&err);
        goto out;
    }
    bufs = calloc(n ? n : 1, sizeof *bufs);
    all = calloc(n_meta + 3, sizeof *all);
    if (!bufs || !all) { rc = cli_errorf("out of memory"); goto out; }
    if (target != MC_DTYPE_F32)
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(ents[i].name, "logit_scale")) continue;   /* one scalar, exp'd: kept f32 */
            size_t cnt = 1;
            for (int d = 0; d < ents[i].ndim; d++) cnt *= (size_t)ents[i].shape[d];
            if (!(bufs[i] = to_half(target, ents[i].data, cnt))) { rc = cli_errorf("out of memory"); goto out; }
            ents[i].data = bufs[i];
            ents[i].dtype = target;
        }
    size_t k = 0;
    const char *base = strrchr(ckpt_path, '/');
    all[k++] = (mc_meta_kv){"format", "pt"};
    all[k++] = (mc_meta_kv){"mobileclip.source", (char *)(base ? base + 1 : ckpt_path)};
    int has_name = 0;
    for (size_t i = 0; i < n_meta; i++) {
        all[k++] = meta[i];
        if (!strcmp(meta[i].key, "mobileclip.model_name")) has_name = 1;
    }
    if (!has_name && name) all[k++] = (mc_meta_kv){"mobileclip.model_name", (char *)name};
    if (mc_safetensors_write(outp, ents, n, all, k, &err)) { rc = cli_error(&err); goto out; }
    *n_out = n;
out:
    if (bufs)
        for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(all);
    free(meta);
    free(ents);
    mc_model_free(m);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const int n_opts = (int)(sizeof convert_opts / sizeof convert_opts[0]);
    cli_args a;
    int help, rc = 0;
    if (cli_parse(argc, argv, convert_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip convert MODEL -o OUT.safetensors|OUT.pt [--format safetensors|pt]\n"
                       "                          [--dtype f32|f16|bf16] [--unfolded] [--config F]",
                       "safetensors: writes the model's folded (re-parameterised) weights as one file\n"
                       "with the config in its metadata ('mobileclip.config'): it loads by itself\n"
                       "(-m OUT.safetensors), faster, with fewer tensors.  f32 gives the same\n"
                       "embeddings; f16 and bf16 halve the file (embeddings then differ slightly:\n"
                       "see docs/cli.md).  --unfolded keeps the checkpoint's own tensors instead.\n"
                       "pt: writes the checkpoint's unfused tensors under the reference's names as a\n"
                       "torch.save file: torch.load(OUT.pt, weights_only=True) gives the state dict\n"
                       "the reference PyTorch model loads (training-state tensors left out).",
                       convert_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    const char *model = cli_get(&a, "model");
    if (!model && a.n_pos) model = a.pos[0];
    if ((cli_get(&a, "model") && a.n_pos) || a.n_pos > 1) {
        cli_args_free(&a);
        return cli_errorf("convert: give one model") + 1;
    }
    const char *outp = cli_get(&a, "output");
    if (!model || !outp) {
        cli_args_free(&a);
        return cli_errorf("convert: needs MODEL and -o OUT.safetensors|OUT.pt (see --help)") + 1;
    }
    const char *fs = cli_get(&a, "format");
    int pt = ends_with(outp, ".pt") || ends_with(outp, ".pth") || ends_with(outp, ".bin");
    if (fs) {
        if (!strcasecmp(fs, "pt") || !strcasecmp(fs, "torch")) pt = 1;
        else if (!strcasecmp(fs, "safetensors")) pt = 0;
        else {
            cli_args_free(&a);
            return cli_errorf("--format: expected safetensors or pt, got '%s'", fs) + 1;
        }
    }
    const char *ds = cli_get(&a, "dtype");
    mc_dtype target = MC_DTYPE_F32;
    if (ds) {
        if (!strcasecmp(ds, "f32") || !strcasecmp(ds, "float32")) target = MC_DTYPE_F32;
        else if (!strcasecmp(ds, "f16") || !strcasecmp(ds, "float16")) target = MC_DTYPE_F16;
        else if (!strcasecmp(ds, "bf16") || !strcasecmp(ds, "bfloat16")) target = MC_DTYPE_BF16;
        else {
            cli_args_free(&a);
            return cli_errorf("--dtype: expected f32, f16 or bf16, got '%s'", ds) + 1;
        }
    }

    char path[4096], ckpt_path[8192], cfg_path[8192];
    const mc_registry_entry *e = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_download_params dp = mc_download_default_params();
    dp.progress = cli_progress_download;
    const char *off = getenv("MOBILECLIP_OFFLINE");
    if (mc_registry_resolve(model, !(off && *off && strcmp(off, "0")), &dp, path, sizeof path, &e, &err)) {
        cli_args_free(&a);
        return cli_error(&err);
    }
    struct stat sb;
    char dir[4096];
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (find_checkpoint(path, e ? e->name : NULL, ckpt_path, sizeof ckpt_path)) {
            cli_args_free(&a);
            return cli_errorf("%s: no checkpoint file found in this folder; give the file", path);
        }
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        snprintf(ckpt_path, sizeof ckpt_path, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    const char *cfg = cli_get(&a, "config");
    if (!cfg) {
        static const char *names[] = {"open_clip_config.json", "config.json"};
        for (size_t i = 0; i < 2 && !cfg; i++) {
            snprintf(cfg_path, sizeof cfg_path, "%s/%s", dir, names[i]);
            if (is_file(cfg_path)) cfg = cfg_path;
        }
    }
    if (pt) {
        mc_config config;
        size_t nw = 0, nl = 0;
        if (mc_config_resolve(ckpt_path, cfg, e ? e->name : NULL, &config, NULL, 0, &err) ||
            mc_state_dict_save_pt(ckpt_path, &config, outp, target, &nw, &nl, &err)) {
            rc = cli_error(&err);
        } else {
            fprintf(stderr, "mobileclip: wrote %s (torch.save, %zu unfused tensors, floats %s", outp, nw,
                    target == MC_DTYPE_F32 ? "f32" : target == MC_DTYPE_F16 ? "f16" : "bf16");
            if (nl) fprintf(stderr, "; %zu training-state tensors left out", nl);
            fprintf(stderr, ")\n");
        }
        cli_args_free(&a);
        return rc;
    }
    if (!cli_has(&a, "unfolded")) {
        size_t nt = 0;
        rc = write_folded(ckpt_path, cfg, e ? e->name : NULL, outp, target, &nt);
        if (!rc)
            fprintf(stderr, "mobileclip: wrote %s (%zu folded tensors, %s)\n", outp, nt,
                    target == MC_DTYPE_F32 ? "f32" : target == MC_DTYPE_F16 ? "f16" : "bf16");
        cli_args_free(&a);
        return rc;
    }
    if (!cfg && !e) {
        cli_args_free(&a);
        return cli_errorf("%s: no config.json or open_clip_config.json beside it; give --config", ckpt_path);
    }

    char *cfg_text = NULL;
    size_t cfg_len = 0;
    mc_checkpoint *ck = NULL;
    mc_st_entry *ents = NULL;
    void **bufs = NULL;
    size_t n = 0;
    if (cfg && mc_file_read_all(cfg, (size_t)1 << 20, &cfg_text, &cfg_len, &err)) { rc = cli_error(&err); goto out; }
    if (mc_checkpoint_open(ckpt_path, &ck, &err)) { rc = cli_error(&err); goto out; }
    n = mc_checkpoint_count(ck);
    ents = calloc(n ? n : 1, sizeof *ents);
    bufs = calloc(n ? n : 1, sizeof *bufs);
    if (!ents || !bufs) { rc = cli_errorf("out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        ents[i].name = t->name;
        ents[i].ndim = t->ndim;
        memcpy(ents[i].shape, t->shape, sizeof t->shape);
        ents[i].dtype = t->dtype;
        ents[i].data = t->data;
        if (!is_float(t->dtype) || t->dtype == target) continue;
        size_t cnt = (size_t)t->numel;
        float *f = mc_malloc_array(cnt ? cnt : 1, sizeof(float));
        if (!f) { rc = cli_errorf("out of memory"); goto out; }
        if (mc_convert_to_f32(t->dtype, t->data, cnt, f)) {
            free(f);
            rc = cli_errorf("%s: tensor '%s': cannot convert %s", ckpt_path, t->name, mc_dtype_name(t->dtype));
            goto out;
        }
        if (target == MC_DTYPE_F32) {
            bufs[i] = f;
        } else {
            void *h = to_half(target, f, cnt);
            free(f);
            if (!h) { rc = cli_errorf("out of memory"); goto out; }
            bufs[i] = h;
        }
        ents[i].dtype = target;
        ents[i].data = bufs[i];
    }
    {
        const char *base = strrchr(ckpt_path, '/');
        base = base ? base + 1 : ckpt_path;
        const char *cbase = cfg ? strrchr(cfg, '/') : NULL;
        cbase = cbase ? cbase + 1 : cfg;
        mc_meta_kv meta[6];
        size_t nm = 0;
        meta[nm++] = (mc_meta_kv){"format", "pt"};
        meta[nm++] = (mc_meta_kv){"mobileclip.layout", "original"};
        meta[nm++] = (mc_meta_kv){"mobileclip.source", (char *)base};
        if (cfg_text) {
            meta[nm++] = (mc_meta_kv){"mobileclip.config", cfg_text};
            meta[nm++] = (mc_meta_kv){"mobileclip.config_file", (char *)cbase};
        }
        if (e) meta[nm++] = (mc_meta_kv){"mobileclip.model_name", (char *)e->name};
        if (mc_safetensors_write(outp, ents, n, meta, nm, &err)) { rc = cli_error(&err); goto out; }
    }
    fprintf(stderr, "mobileclip: wrote %s (%zu tensors, %s)\n", outp, n,
            target == MC_DTYPE_F32 ? "f32" : target == MC_DTYPE_F16 ? "f16" : "bf16");
out:
    if (bufs)
        for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(ents);
    mc_checkpoint_close(ck);
    free(cfg_text);
    cli_args_free(&a);
    return rc;
}
