/*
 * cmd_info.c - the 'info' command.  (In progress.)
 */
#include "cli.h"

int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_errorf("'info' is not built yet");
}
