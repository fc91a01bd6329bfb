/*
 * io/torchsave.h - writing a state dict as a torch.save zip archive, the
 * file PyTorch (1.13 and later) reads with
 *     torch.load(path, map_location="cpu", weights_only=True)
 * into a collections.OrderedDict of CPU tensors, in the order given.
 *
 * The archive, as torch.save lays it out (every entry stored, its data
 * aligned to 64 bytes through a padding extra field, CRC-32 filled in):
 *   <top>/data.pkl     the pickle (protocol 2): OrderedDict of name ->
 *                      torch._utils._rebuild_tensor_v2(storage, 0, size,
 *                      stride, False, OrderedDict()), each storage a
 *                      persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
 *   <top>/byteorder    "little"
 *   <top>/data/<key>   each tensor's bytes (key "0", "1", ... in entry order)
 *   <top>/version      "3\n"
 * ZIP64 records are written for what does not fit the 32-bit fields (files
 * over 4 GiB).  The write is atomic: a temporary file beside path, fsync,
 * rename, fsync of the folder; on failure nothing is left at path.
 */
#ifndef MC_IO_TORCHSAVE_H
#define MC_IO_TORCHSAVE_H

#include "io/safetensors.h"

#define MC_TORCHSAVE_MAX_NAME 1024       /* bytes of a tensor name */
#define MC_TORCHSAVE_MAX_TENSORS 32768   /* what io/torchzip.c reads back */

typedef struct mc_torchsave_params {
    const char *archive_name;  /* the top folder; NULL: "archive" (letters, digits, '_', '-', '.') */
    uint64_t zip64_above;      /* tests: sizes and offsets above this go to ZIP64 fields;
                                  0: the format's own limit (0xFFFFFFFE) */
} mc_torchsave_params;

/* Writes entries[0..n) (name, dtype, shape, contiguous little-endian data) to
 * path.  Every mc_dtype is written (torch.FloatStorage, HalfStorage,
 * BFloat16Storage, DoubleStorage, LongStorage, IntStorage, ShortStorage,
 * CharStorage, ByteStorage, BoolStorage).  Refused with MC_ERR_INVALID_ARG,
 * before anything is written: no tensors or more than MC_TORCHSAVE_MAX_TENSORS,
 * a name that is empty, longer than MC_TORCHSAVE_MAX_NAME bytes, not UTF-8 or
 * given twice, an unknown dtype, more than MC_MAX_DIMS or negative dimensions,
 * sizes that overflow, data NULL for a non-empty tensor.  params may be NULL. */
mc_status mc_torchsave_write(const char *path, const mc_st_entry *entries, size_t n,
                             const mc_torchsave_params *params, mc_error *err);

/* The same archive into memory: *out (malloc'd, *out_len bytes; free() it).
 * Nothing is written to disk. */
mc_status mc_torchsave_write_memory(const mc_st_entry *entries, size_t n, const mc_torchsave_params *params,
                                    uint8_t **out, size_t *out_len, mc_error *err);

#endif /* MC_IO_TORCHSAVE_H */
