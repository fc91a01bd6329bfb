/*
 * cmd_augment.c - the 'augment' command: re-applies stored augmentation A
 * of sample KEY of a DataCompDR shard at a given size, exactly as training
 * re-applies it, and writes the uint8 [S, S, 3] pixels as .npy (to compare)
 * or .png (to look at).
 */
#include "cli.h"
#include "core/npy.h"
#include "data/augment.h"
#include "data/shard.h"
#include "io/image_write.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const cli_opt opts[] = {
    {"key", 'k', 1, 0, "KEY   the sample (its webdataset key, e.g. 000000123)"},
    {"aug", 'a', 1, 0, "A     which stored augmentation (0-based; default 0)"},
    {"size", 's', 1, 0, "S     output side (the student's: 224, 256, ...; default 224)"},
    {"interp", 0, 1, 0, "I     resize of the crop: bicubic (default, as training) or bilinear"},
    {"dr-config", 0, 1, 0, "FILE  the augmentation config the shards were made with (Apple's\n"
                           "                      datacompdr12m.json layout); default: DataCompDR's"},
    {"output", 'o', 1, 0, "FILE  .npy (uint8 [S, S, 3]) or .png (required)"},
};
#define N_OPTS ((int)(sizeof opts / sizeof opts[0]))

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Finds KEY in the shards of spec; *out the record (caller frees). */
static int find_record(const char *spec, const char *key, mc_dr_record **out) {
    char **list = NULL;
    size_t n = 0;
    mc_error err;
    mc_error_clear(&err);
    *out = NULL;
    if (mc_shard_expand(spec, 1u << 20, &list, &n, &err) != MC_OK) return cli_error(&err);
    mc_shard_params sp = mc_shard_default_params();
    sp.dr.decode_embeddings = 0;
    int rc = 1;
    for (size_t i = 0; i < n && !*out; i++) {
        mc_shard_reader *r = NULL;
        if (mc_shard_open(list[i], &sp, &r, &err) != MC_OK) { cli_error(&err); goto done; }
        for (;;) {
            mc_dr_record *rec = NULL;
            mc_status st = mc_shard_next(r, &rec, &err);
            if (st != MC_OK) { mc_shard_close(r); cli_error(&err); goto done; }
            if (!rec) break;
            if (!strcmp(rec->key, key)) { *out = rec; break; }
            mc_dr_record_free(rec);
        }
        mc_shard_close(r);
    }
    if (*out) rc = 0;
    else cli_errorf("%s: no sample with key '%s' (with an image, paug.json and captions)", spec, key);
done:
    mc_shard_list_free(list, n);
    return rc;
}

int cmd_augment(int argc, char **argv) {
    static const char *usage = "mobileclip augment SHARD --key KEY [--aug A] [--size S] [--dr-config F] -o OUT.npy|OUT.png";
    static const char *about =
        "Re-applies stored augmentation A of sample KEY (DataCompDR / DFNDR paug.json) to its image\n"
        "as training does: decode (no EXIF rotation), crop the stored box, resize it to S x S\n"
        "(Pillow's antialiased bicubic), flip, the RandAugment ops, erasing; byte for byte what\n"
        "Pillow 9.4 and torchvision 0.14 give under Apple's transforms.py.  SHARD may be a brace\n"
        "pattern or a '::' list; the first sample with KEY is used.";
    cli_args a;
    int help = 0, rc = 1;
    if (cli_parse(argc, argv, opts, N_OPTS, &a, &help) != 0) {
        cli_args_free(&a);
        return 2;
    }
    if (help) {
        cli_print_help(stdout, usage, about, opts, N_OPTS);
        cli_args_free(&a);
        return 0;
    }
    mc_dr_record *rec = NULL;
    mc_image img = {0}, aug = {0};
    mc_error err;
    mc_error_clear(&err);
    const char *key = cli_get(&a, "key"), *out = cli_get(&a, "output"), *v;
    int A = 0, size = 224;
    mc_interp interp = MC_INTERP_BICUBIC;
    mc_aug_layout layout = mc_aug_layout_datacompdr();
    if (a.n_pos != 1) { cli_errorf("augment: expected one SHARD argument (see --help)"); goto done; }
    if (!key) { cli_errorf("augment: --key KEY is required"); goto done; }
    if (!out || !(ends_with(out, ".npy") || ends_with(out, ".png"))) {
        cli_errorf("augment: -o OUT.npy or OUT.png is required");
        goto done;
    }
    if ((v = cli_get(&a, "aug")) && (cli_parse_int(v, &A) != 0 || A < 0)) {
        cli_errorf("--aug: expected an index >= 0, got '%s'", v);
        goto done;
    }
    if ((v = cli_get(&a, "size")) && (cli_parse_int(v, &size) != 0 || size < 1 || size > MC_AUG_MAX_SIZE)) {
        cli_errorf("--size: expected an integer in 1..%d, got '%s'", MC_AUG_MAX_SIZE, v);
        goto done;
    }
    if ((v = cli_get(&a, "interp"))) {
        if (!strcmp(v, "bicubic")) interp = MC_INTERP_BICUBIC;
        else if (!strcmp(v, "bilinear")) interp = MC_INTERP_BILINEAR;
        else { cli_errorf("--interp: bicubic or bilinear, got '%s'", v); goto done; }
    }
    if ((v = cli_get(&a, "dr-config")) && mc_aug_layout_from_file(v, &layout, &err) != MC_OK) {
        cli_error(&err);
        goto done;
    }
    if (find_record(a.pos[0], key, &rec) != 0) goto done;
    if ((size_t)A >= rec->n_aug) {
        cli_errorf("%s: %s: augmentation %d out of range: the sample stores %zu (0..%zu)", rec->shard, key, A,
                   rec->n_aug, rec->n_aug - 1);
        goto done;
    }
    if (!rec->image) { cli_errorf("%s: %s: the sample has no image", rec->shard, key); goto done; }
    mc_aug_params p;
    mc_status st = mc_aug_parse(&rec->aug[A], &layout, &p, &err);
    if (st == MC_OK) st = mc_image_load_memory(rec->image, rec->image_size, 0, &img, &err);
    if (st == MC_OK) st = mc_aug_reapply(&img, &p, size, interp, &aug, &err);
    if (st != MC_OK) {
        mc_error_prefix(&err, "%s: %s: augmentation %d", rec->shard, key, A);
        cli_error(&err);
        goto done;
    }
    if (ends_with(out, ".png")) {
        st = mc_image_write_png(out, &aug, &err);
    } else {
        int64_t shape[3] = {aug.height, aug.width, 3};
        st = mc_npy_write(out, "|u1", 1, aug.rgb, 3, shape, &err);
    }
    if (st != MC_OK) { cli_error(&err); goto done; }
    printf("%s: %s augmentation %d of %zu (image %dx%d", out, key, A, rec->n_aug, img.width, img.height);
    if (p.has_crop) printf(", crop top %d left %d %dx%d", p.crop_top, p.crop_left, p.crop_w, p.crop_h);
    if (p.has_flip && p.flip) printf(", flipped");
    for (int i = 0; p.has_randaug && i < p.n_ops; i++) printf(", %s %g", mc_aug_op_name(p.op[i]), p.mag[i]);
    if (p.has_erase && p.erase_x != -1) printf(", erased %lldx%lld", p.erase_h, p.erase_w);
    printf(") -> %dx%d\n", aug.width, aug.height);
    rc = 0;
done:
    mc_image_free(&img);
    mc_image_free(&aug);
    mc_dr_record_free(rec);
    cli_args_free(&a);
    return rc;
}
