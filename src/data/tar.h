/*
 * data/tar.h - a streaming reader of tar archives (webdataset shards).
 *
 * Reads a file sequentially (one member in memory at a time, never the whole
 * archive) or a buffer in memory.  Understands ustar (with its name prefix),
 * GNU long names ('L'; long link names 'K' are read and dropped), pax
 * extended headers ('x' and Solaris 'X': the "path" and "size" records apply
 * to the next member; other records are parsed and ignored) and pax global
 * headers ('g': parsed for validity, then ignored).  Directories, links,
 * devices and FIFOs are skipped; only regular files are returned.
 *
 * Untrusted input: every header checksum (unsigned or signed sum), every
 * octal or base-256 number, every size against the end of the archive is
 * checked; a truncated archive is an error.  A member whose name is absolute
 * or has a ".." component, or whose size exceeds max_member_size, is refused:
 * its data is skipped and mc_tar_next reports the refusal with
 * MC_ERR_FORMAT, after which the reader is still usable (mc_tar_failed()
 * is 0).  Any other error is fatal: the reader stays failed and every later
 * call returns that error again.
 */
#ifndef MC_DATA_TAR_H
#define MC_DATA_TAR_H

#include "core/core.h"

#include <stdio.h>

typedef struct mc_tar_params {
    size_t max_member_size;   /* largest member returned (bytes); default 1 GiB */
    size_t max_header_size;   /* largest pax / GNU long-name block; default 1 MiB */
    size_t max_name_len;      /* longest member name; default 4096 */
} mc_tar_params;

mc_tar_params mc_tar_default_params(void);

typedef struct mc_tar mc_tar;

/* One regular member.  name and data belong to the reader and stay valid
 * until the next mc_tar_next / mc_tar_close (unless taken with
 * mc_tar_take_data).  data[size] is a NUL byte (handy for text members). */
typedef struct mc_tar_member {
    const char *name;
    uint8_t *data;
    size_t size;
    uint64_t header_offset;   /* where its (first) header starts in the archive */
} mc_tar_member;

/* Opens path for sequential reading; the path names the archive in errors.
 * params may be NULL (defaults). */
mc_status mc_tar_open_file(const char *path, const mc_tar_params *params, mc_tar **out,
                           mc_error *err);
/* Reads the archive data[0..len), which must outlive the reader (not copied).
 * label (NULL: "<memory>") names it in errors. */
mc_status mc_tar_open_memory(const void *data, size_t len, const char *label,
                             const mc_tar_params *params, mc_tar **out, mc_error *err);
void mc_tar_close(mc_tar *t);

/* The next regular member.  MC_OK with *eof = 1 at the end of the archive
 * (two zero blocks, one zero block, or the end of the data at a header
 * boundary).  Errors name the archive, the member and its offset. */
mc_status mc_tar_next(mc_tar *t, mc_tar_member *m, int *eof, mc_error *err);

/* Takes ownership of the current member's data buffer (free() it; it holds
 * size + 1 bytes, NUL-terminated); the member's data pointer stays valid. */
uint8_t *mc_tar_take_data(mc_tar *t);

/* 1 after a fatal error (the reader cannot continue). */
int mc_tar_failed(const mc_tar *t);
/* The archive's label, as used in error messages. */
const char *mc_tar_label(const mc_tar *t);

/* 1 when name[0..len) is an acceptable member name: not empty, not
 * absolute, no ".." component, no NUL byte; 0 otherwise. */
int mc_tar_name_ok(const char *name, size_t len);

/* ---------------------------------------------------------------- writing */

/* Appends one regular member to a tar stream as POSIX ustar (mode 0644,
 * owner 0, mtime 0): a name of up to 100 bytes, or up to 255 split at a '/'
 * into the ustar prefix; the data padded to 512 bytes.  The name must pass
 * mc_tar_name_ok.  label names the archive in errors. */
mc_status mc_tar_write_member(FILE *f, const char *label, const char *name, const void *data, size_t size,
                              mc_error *err);
/* Ends a tar stream (two zero blocks). */
mc_status mc_tar_write_end(FILE *f, const char *label, mc_error *err);

#endif /* MC_DATA_TAR_H */
