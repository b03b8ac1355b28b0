/*
 * term.h - whether to colour what we print.
 */
#ifndef DV_TERM_H
#define DV_TERM_H

#include <stdbool.h>
#include <stdio.h>

/* True when f is a terminal and NO_COLOR is unset or empty
 * (https://no-color.org). */
bool dv_term_color(FILE *f);

/* ANSI sequences, or "" when colour is off. */
#define DV_TERM_RED(on) ((on) ? "\033[31m" : "")
#define DV_TERM_GREEN(on) ((on) ? "\033[32m" : "")
#define DV_TERM_YELLOW(on) ((on) ? "\033[33m" : "")
#define DV_TERM_BOLD(on) ((on) ? "\033[1m" : "")
#define DV_TERM_RESET(on) ((on) ? "\033[0m" : "")

#endif
