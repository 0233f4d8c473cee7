/* table.c - aligned text tables for the CLI: a header row, then rows of cells, each
 * column as wide as its widest cell, right-aligned (the cells are numbers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_table_init(cli_table_t *t, const char *const *headers, int cols, int rows)
{
    t->headers = headers;
    t->cols = cols;
    t->rows = rows;
    t->cells = calloc((size_t)(rows ? rows : 1) * (size_t)cols, CLI_CELL_BYTES);
    return t->cells ? 0 : -1;
}

char *cli_table_cell(cli_table_t *t, int row, int col)
{
    return t->cells + ((size_t)row * (size_t)t->cols + (size_t)col) * CLI_CELL_BYTES;
}

static void table_row(const cli_table_t *t, const char *const *cells, const int *widths)
{
    for (int c = 0; c < t->cols; c++)
        printf("%s%*s", c ? "  " : "", widths[c], cells[c]);
    putchar('\n');
}

void cli_table_print(cli_table_t *t)
{
    int widths[CLI_TABLE_MAX_COLS];
    const char *row[CLI_TABLE_MAX_COLS];

    for (int c = 0; c < t->cols; c++) {
        widths[c] = (int)strlen(t->headers[c]);
        for (int r = 0; r < t->rows; r++) {
            int w = (int)strlen(cli_table_cell(t, r, c));
            widths[c] = w > widths[c] ? w : widths[c];
        }
    }
    table_row(t, t->headers, widths);
    for (int r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols; c++)
            row[c] = cli_table_cell(t, r, c);
        table_row(t, row, widths);
    }
}

void cli_table_release(cli_table_t *t)
{
    free(t->cells);
    t->cells = NULL;
}
