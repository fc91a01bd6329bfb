/*
 * torchzip.c - reader for torch.save zip archives (.pt/.pth/.bin): the zip
 * container and the restricted pickle subset that state dicts use.
 * (In progress: replaced by the full reader.)
 */
#include "mc_internal.h"

mc_status mc_torchzip_parse(mc_checkpoint *ckpt, mc_error *err) {
    return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: torch.save reader not built yet", ckpt->path);
}
