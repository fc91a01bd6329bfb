/*
 * cmd_tokenize.c - the 'tokenize' command.  (In progress.)
 */
#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_errorf("'tokenize' is not built yet");
}
