/* term.c - colour only on a terminal, never with NO_COLOR. */
#include "term.h"

#include <stdlib.h>
#include <unistd.h>

bool dv_term_color(FILE *f)
{
    const char *nc = getenv("NO_COLOR");
    if (nc && nc[0]) return false;
    return isatty(fileno(f)) == 1;
}
