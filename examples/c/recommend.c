/* A program that serves a trained model through libmtr's C API (mtr.h):
 * it lists the model, recommends k items for one user, and predicts every
 * ranking task for that user and the first recommended item. Built against an
 * installed libmtr with pkg-config (see Makefile and docs/api.md):
 *
 *   cc recommend.c $(pkg-config --cflags --libs mtr) -o recommend
 *   ./recommend model.bin 42 [k]
 *
 * The recommendations print as `mtrun MODEL recommend --user 42 -k K` prints
 * them (rank, score, item), and the predictions as `mtrun ... predict` does. */
#include <mtr.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL USER [K]\n", argv[0]);
        return 2;
    }
    int k = argc > 3 ? atoi(argv[3]) : 5;
    MtrError err;
    Mtr *m;
    if (mtr_open(argv[1], &m, &err)) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        return 1;
    }

    /* The first input that is not an item attribute is the user; the first
     * that is, the item. */
    const char *user_col = NULL, *item_col = NULL;
    for (int i = 0; i < mtr_input_count(m); i++) {
        if (!mtr_input_is_item(m, i) && !user_col) user_col = mtr_input_name(m, i);
        if (mtr_input_is_item(m, i) && !item_col) item_col = mtr_input_name(m, i);
    }
    int n_tasks = mtr_task_count(m);
    printf("# model %s (libmtr %s): %d tasks, %lld items\n", mtr_name(m), mtr_version(), n_tasks,
           (long long)mtr_item_count(m));
    for (int t = 0; t < n_tasks; t++)
        printf("# task %s:%s%s%s\n", mtr_task_name(m, t),
               mtr_task_flags(m, t) & MTR_TASK_PREDICTS ? " predicts" : "",
               mtr_task_flags(m, t) & MTR_TASK_VECTORS ? " vectors" : "",
               mtr_task_flags(m, t) & MTR_TASK_RECOMMENDS ? " recommends" : "");

    int rc = 0;
    const char *cols[2] = {user_col, item_col};
    const char *vals[2] = {argv[2], NULL};
    MtrRows query = {.n_rows = 1, .n_columns = 1, .columns = cols, .values = vals};
    int64_t *ids = calloc((size_t)(k > 0 ? k : 1), sizeof *ids);
    float *scores = calloc((size_t)(k > 0 ? k : 1), sizeof *scores);
    float *pred = calloc((size_t)n_tasks + 1, sizeof *pred);
    if (!ids || !scores || !pred) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        rc = 1;
    } else if (mtr_recommend(m, &query, k, NULL, ids, scores, &err)) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        rc = 1;
    } else {
        for (int i = 0; i < k; i++)
            printf("%d\t%.4f\t%s\n", i + 1, scores[i], mtr_item_label(m, ids[i]));
        /* One row: this user and the best item. */
        vals[1] = mtr_item_label(m, ids[0]);
        MtrRows row = {.n_rows = 1, .n_columns = 2, .columns = cols, .values = vals};
        if (mtr_predict(m, &row, pred, &err) == MTR_OK) {
            for (int t = 0; t < n_tasks; t++)
                if (mtr_task_flags(m, t) & MTR_TASK_PREDICTS)
                    printf("%s\t%.6f\n", mtr_task_name(m, t), pred[t]);
        } else if (err.status != MTR_E_STATE) { /* MTR_E_STATE: no ranking task */
            fprintf(stderr, "%s: %s\n", argv[0], err.msg);
            rc = 1;
        }
    }
    free(ids), free(scores), free(pred);
    mtr_close(m);
    return rc;
}
