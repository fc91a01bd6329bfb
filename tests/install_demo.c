/*
 * install_demo.c - a program built against an installed mobileclip (through
 * pkg-config, by tests/test_install.sh): embeds one image with the public
 * API alone and writes the embedding as .npy.
 * usage: install_demo MODEL IMAGE OUT.npy
 */
#include <mobileclip.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: install_demo MODEL IMAGE OUT.npy\n");
        return 2;
    }
    mc_error err;
    mc_error_clear(&err);
    mc_model *m = NULL;
    mc_context *ctx = NULL;
    mc_model_params mp = mc_model_default_params();
    mp.load_text_tower = 0;
    if (mc_model_load(argv[1], &mp, &m, &err) != MC_OK || mc_context_new(m, NULL, &ctx, &err) != MC_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    mc_model_info info;
    mc_model_get_info(m, &info);
    float *px = malloc(sizeof(float) * 3 * (size_t)info.image_size * (size_t)info.image_size);
    float *emb = malloc(sizeof(float) * (size_t)info.embed_dim);
    int64_t shape[2] = {1, info.embed_dim};
    int rc = !px || !emb ||
             mc_image_preprocess_file(argv[2], &info.preprocess, px, &err) != MC_OK ||
             mc_encode_image(ctx, px, 1, 1, emb) != MC_OK ||
             mc_npy_write_f32(argv[3], emb, 2, shape, &err) != MC_OK;
    if (rc) fprintf(stderr, "%s%s\n", err.message, mc_context_last_error(ctx)->message);
    printf("mobileclip %s: %s embedded, %d dims\n", mc_version(), argv[2], info.embed_dim);
    free(px);
    free(emb);
    mc_context_free(ctx);
    mc_model_free(m);
    return rc;
}
