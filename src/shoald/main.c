/* main.c - shoald entry point (placeholder until the daemon lands). */
#include <stdio.h>
int main(void)
{
    fputs("shoald: not built yet\n", stderr);
    return 1;
}
