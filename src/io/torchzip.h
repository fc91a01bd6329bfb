/*
 * io/torchzip.h - the torch.save zip archive (.pt, .pth, .bin) reader.
 */
#ifndef MC_IO_TORCHZIP_H
#define MC_IO_TORCHZIP_H

#include "io/checkpoint.h"

/* Reads the state dict of ckpt->map (a torch.save zip) into ckpt's tensor table. */
mc_status mc_torchzip_parse(mc_checkpoint *ckpt, mc_error *err);

#endif /* MC_IO_TORCHZIP_H */
