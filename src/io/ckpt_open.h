/*
 * io/ckpt_open.h - opening a checkpoint held in memory (mc_checkpoint_open,
 * for files, is in mobileclip.h); the format is decided by content.
 */
#ifndef MC_IO_CKPT_OPEN_H
#define MC_IO_CKPT_OPEN_H

#include "io/checkpoint.h"

/* Opens a checkpoint (torch.save zip or safetensors) held in memory, e.g. a
 * decompressed .pth.gz.  The bytes are copied; name labels error messages
 * (NULL: "<memory>"). */
mc_status mc_checkpoint_open_memory(const void *data, size_t len, const char *name,
                                    mc_checkpoint **out, mc_error *err);

#endif /* MC_IO_CKPT_OPEN_H */
