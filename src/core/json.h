/*
 * core/json.h - a small, strict JSON reader (RFC 8259) for configs and
 * safetensors headers.  The whole document becomes one tree owned by the
 * root; depth and sizes are bounded so hostile input cannot exhaust memory.
 */
#ifndef MC_JSON_H
#define MC_JSON_H

#include "core/core.h"

typedef enum mc_json_type {
    MC_JSON_NULL = 0,
    MC_JSON_BOOL,
    MC_JSON_NUMBER,
    MC_JSON_STRING,
    MC_JSON_ARRAY,
    MC_JSON_OBJECT
} mc_json_type;

typedef struct mc_json mc_json;
struct mc_json {
    mc_json_type type;
    bool boolean;
    double number;
    char *string;         /* STRING: UTF-8, NUL-terminated (may hold NULs: see len) */
    size_t len;           /* STRING: byte length; ARRAY/OBJECT: item count */
    char **keys;          /* OBJECT: keys[i] names items[i] */
    mc_json *items;       /* ARRAY/OBJECT children */
};

#define MC_JSON_MAX_DEPTH 64

/* Parses text[0..len).  On success *out is a tree to free with mc_json_free. */
mc_status mc_json_parse(const char *text, size_t len, mc_json **out, mc_error *err);
void mc_json_free(mc_json *root);

/* Member of an object by key, or NULL (also NULL when obj is not an object). */
const mc_json *mc_json_get(const mc_json *obj, const char *key);
/* Follows a path of keys separated by '.', e.g. "model_cfg.vision_cfg". */
const mc_json *mc_json_path(const mc_json *obj, const char *path);
/* Typed access with defaults when missing or of another type. */
double mc_json_number(const mc_json *v, double dflt);
int mc_json_int(const mc_json *v, int dflt);
bool mc_json_bool(const mc_json *v, bool dflt);
const char *mc_json_str(const mc_json *v, const char *dflt);

/* Writes s as a JSON string literal ("...", quotes, backslashes and control
 * characters escaped). */
void mc_json_write_str(FILE *f, const char *s);

#endif /* MC_JSON_H */
