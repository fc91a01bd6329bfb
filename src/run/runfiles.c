/*
 * run/runfiles.c - run folder files (runfiles.h).
 */
#include "run/runfiles.h"
#include "core/json.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

mc_status mc_run_truncate_log(const char *path, int64_t max_step, mc_error *err) {
    if (!mc_path_is_file(path)) return MC_OK;
    char *text = NULL;
    size_t len = 0;
    mc_status st = mc_file_read_all(path, (size_t)1 << 34, &text, &len, err);
    if (st != MC_OK) return st;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { free(text); return mc_fail(err, MC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); }
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        if (e == len) break;                       /* no newline: torn by a crash mid-write */
        mc_json *j = NULL;
        mc_error e2;
        mc_error_clear(&e2);
        if (mc_json_parse(text + i, e - i, &j, &e2) == MC_OK) {
            const mc_json *sv = mc_json_get(j, "step");
            if (sv && mc_json_number(sv, -1) >= 0 && mc_json_number(sv, -1) <= (double)max_step)
                fwrite(text + i, 1, e - i + 1, f);
            mc_json_free(j);
        }
        i = e + 1;
    }
    free(text);
    return mc_file_commit(f, tmp, path, !ferror(f), err);
}

int mc_run_remove_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        /* "*.tmp" of the run's own writers, "*.tmp-<pid>-<k>" of mc_temp_name */
        if ((len < 5 || strcmp(de->d_name + len - 4, ".tmp")) && !strstr(de->d_name, ".tmp-")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (mc_path_is_file(path) && remove(path) == 0) n++;
    }
    closedir(d);
    return n;
}
