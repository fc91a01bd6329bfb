/*
 * cmd_list.c - the 'list' command: every official model with its published
 * sizes, input resolution, embedding dim, and whether it is in the cache.
 */
#include "cli.h"
#include "io/registry.h"

static const cli_opt list_opts[] = {
    {"urls", 0, 0, 0, "also print the download URLs"},
};

int cmd_list(int argc, char **argv) {
    const int n_opts = (int)(sizeof list_opts / sizeof list_opts[0]);
    cli_args a;
    int help;
    if (cli_parse(argc, argv, list_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip list [--urls]",
                       "Lists the official models: name (give it as -m MODEL), checkpoint layout,\n"
                       "image tower, input size, embedding dim, parameters in millions (image + text,\n"
                       "as published) and whether the model is in the cache (downloaded on first use).\n"
                       "Cache: $MOBILECLIP_CACHE, else $XDG_CACHE_HOME/mobileclip, else ~/.cache/mobileclip.",
                       list_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    if (a.n_pos) {
        cli_args_free(&a);
        return cli_errorf("list: unexpected argument '%s'", a.pos[0]) + 1;
    }
    char cache[4096];
    mc_error err;
    if (mc_registry_cache_dir(cache, sizeof cache, &err)) snprintf(cache, sizeof cache, "(none: %s)", err.message);
    printf("%-30s %-10s %-27s %5s %5s %17s  %s\n", "NAME", "LAYOUT", "IMAGE TOWER", "SIZE", "DIM",
           "PARAMS (M)", "CACHED");
    for (size_t i = 0; i < mc_registry_count(); i++) {
        const mc_registry_entry *e = mc_registry_get(i);
        char params[40];
        snprintf(params, sizeof params, "%.1f + %.1f", e->params_image_m, e->params_text_m);
        printf("%-30s %-10s %-27s %5d %5d %17s  %s\n", e->name, e->family, e->image_arch, e->image_size,
               e->embed_dim, params, mc_registry_is_cached(e) ? "yes" : "no");
        if (cli_has(&a, "urls")) {
            char url[4096];
            for (int k = 0; k < MC_REGISTRY_MAX_FILES && e->files[k]; k++)
                if (!mc_registry_url(e, e->files[k], url, sizeof url, NULL)) printf("    %s\n", url);
        }
    }
    printf("\ncache: %s\n", cache);
    cli_args_free(&a);
    return 0;
}
