/*
 * serve/page.c - the web page served at "/": page.html, embedded into the
 * library by the assembler (.incbin, path from the project root where the
 * build runs) and NUL-terminated, so that the page stays a plain HTML file.
 */
#include "serve/server.h"

__asm__(".section .rodata\n"
        ".global mc_serve_page\n"
        ".type mc_serve_page, STT_OBJECT\n"
        ".balign 16\n"
        "mc_serve_page:\n"
        ".incbin \"src/serve/page.html\"\n"
        ".byte 0\n"
        ".size mc_serve_page, . - mc_serve_page\n"
        ".previous\n");
