/* Suggestions for misspelt names (see names.c). */
#ifndef MTR_NAMES_H
#define MTR_NAMES_H

/* Levenshtein distance between a and b, an adjacent transposition counting as
 * one edit, or a large number when either is longer than 64 bytes
 * (suggestions are for typos, not essays). */
int mtr_name_distance(const char *a, const char *b);

/* Whether `candidate` is close enough to the misspelt `name` to suggest it:
 * one edit for names of up to 3 bytes, about a third of the name beyond. */
int mtr_name_is_close(const char *name, const char *candidate);

#endif
