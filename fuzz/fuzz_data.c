/* libFuzzer target: the data readers. The first byte picks a folder layout
 * (MovieLens 100K, 1M, "latest", generic CSV or TSV with or without an items
 * file) and the read options; the rest is the interactions file, then, after
 * the first form feed byte (0x0c), the items file. A folder that reads is then driven on:
 * vocabularies of every column, id encoding, numbers, and the interactions
 * file read again as a --train file. */
#include "mtr/data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const char *ratings, *items; /* items NULL: no items file */
} Layout;

static const Layout layouts[] = {
    {"u.data", "u.item"},
    {"ratings.dat", "movies.dat"},
    {"ratings.csv", "movies.csv"},
    {"interactions.csv", "items.csv"},
    {"interactions.tsv", "items.tsv"},
    {"interactions.csv", NULL},
    {"interactions.tsv", NULL},
};
#define N_LAYOUTS (sizeof layouts / sizeof layouts[0])

static char dir[64];

static void put(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

static void clear(void)
{
    for (size_t i = 0; i < N_LAYOUTS; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, layouts[i].ratings);
        unlink(path);
        if (layouts[i].items) {
            snprintf(path, sizeof path, "%s/%s", dir, layouts[i].items);
            unlink(path);
        }
    }
}

static void drive_table(const MtrDataset *ds, const MtrTable *t, int from_items)
{
    MtrError e = {0};
    for (uint32_t c = 0; c < t->n_columns; c++) {
        const char *name = t->columns[c].name;
        MtrVocab v = {0};
        if (mtr_vocab_build(ds, name, from_items, &v, &e) == MTR_OK) {
            MtrVocabIndex *ix = NULL;
            if (mtr_vocab_index_new(&v, &ix, &e) == MTR_OK) {
                int32_t *ids = malloc((t->n_rows + 1) * sizeof *ids);
                if (ids) {
                    uint64_t oov = 0;
                    (void)mtr_vocab_encode(ix, t, name, ids, &oov, &e);
                    free(ids);
                }
                mtr_vocab_index_free(ix);
            }
            mtr_vocab_clear(&v);
        }
        float *num = malloc((t->n_rows + 1) * sizeof *num);
        if (num) {
            (void)mtr_table_numbers(t, name, num, &e);
            free(num);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/mtr-fuzz-data-%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0) abort();
    }
    if (size < 1) return 0;
    const Layout *l = &layouts[data[0] % N_LAYOUTS];
    int skip_bad = (data[0] / N_LAYOUTS) & 1;
    int item_cols = (data[0] / N_LAYOUTS / 2) & 1;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    const uint8_t *ff = memchr(body, '\f', n);
    size_t cut = ff ? (size_t)(ff - body) : n;
    clear();
    put(l->ratings, body, cut);
    if (l->items) put(l->items, body + cut + (ff != NULL), n - cut - (ff != NULL));

    static const char *const items_default[] = {"movie_title", NULL};
    static const char *const items_two[] = {"item", "category", NULL};
    MtrDataOptions opt = {.skip_bad = skip_bad,
                          .item_columns = item_cols ? items_two : items_default};
    MtrDataset *ds = NULL;
    MtrError e = {0};
    if (mtr_data_open(dir, &opt, &ds, &e) == MTR_OK) {
        drive_table(ds, &ds->ratings, 1);
        drive_table(ds, &ds->items, 0);
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, l->ratings);
        MtrTable t = {0};
        uint64_t skipped = 0;
        if (mtr_data_read_interactions(path, ds, &opt, &t, &skipped, &e) == MTR_OK)
            mtr_table_free(&t);
        mtr_data_free(ds);
    }
    return 0;
}
