/* shoal.c - the shoal command-line tool (placeholder until the CLI lands). */
#include <stdio.h>
int main(void)
{
    fputs("shoal: not built yet\n", stderr);
    return 1;
}
