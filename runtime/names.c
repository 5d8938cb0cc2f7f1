/* Names that a person types and may misspell: the distance between two names
 * and whether one is close enough to another to suggest it ("did you mean").
 * Shared by mtrc's messages and mtrun's knob and column names. */
#include "mtr/names.h"

#include <string.h>

#define MAX_SUGGEST_LEN 64

int mtr_name_distance(const char *a, const char *b)
{
    /* Levenshtein with adjacent transpositions ("rl" for "lr" is one typo). */
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_SUGGEST_LEN || lb > MAX_SUGGEST_LEN) return 1 << 20;
    int rows[3][MAX_SUGGEST_LEN + 1];
    int *older = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int best = sub < del ? sub : del;
            best = best < ins ? best : ins;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                older[j - 2] + 1 < best)
                best = older[j - 2] + 1;
            cur[j] = best;
        }
        int *t = older;
        older = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

int mtr_name_is_close(const char *name, const char *candidate)
{
    size_t n = strlen(name);
    /* One edit for short names, about a third of the name for long ones;
     * never so many that any short name would match. */
    int limit = n <= 3 ? 1 : (int)(n + 2) / 3;
    int dist = mtr_name_distance(name, candidate);
    return dist > 0 && dist <= limit && (size_t)dist < n;
}
