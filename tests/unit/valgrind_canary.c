/* valgrind_canary.c - proof that the valgrind suite catches our bugs: a
 * decision on heap memory nobody wrote. Registered should_fail: if memcheck
 * stops reporting this, the canary passes and the suite fails. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    volatile int *v = malloc(4 * sizeof *v);
    if (!v) return 1;
    int seen = v[2] > 0; /* uninitialized */
    if (seen) puts("positive");
    free((void *)v);
    return 0;
}
