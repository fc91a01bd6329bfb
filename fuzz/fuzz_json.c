/*
 * fuzz_json.c - libFuzzer entry point for the JSON reader and the model
 * config parser built on it.
 */
#include "io/config.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mc_json *root = NULL;
    mc_error err;
    if (mc_json_parse((const char *)data, size, &root, &err) == MC_OK) {
        (void)mc_json_path(root, "model_cfg.vision_cfg.image_size");
        mc_json_free(root);
    }
    mc_config cfg;
    (void)mc_config_parse((const char *)data, size, "fuzz", &cfg, &err);
    return 0;
}
