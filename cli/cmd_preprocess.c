/*
 * cmd_preprocess.c - the 'preprocess' command.  (In progress.)
 */
#include "cli.h"

int cmd_preprocess(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_errorf("'preprocess' is not built yet");
}
