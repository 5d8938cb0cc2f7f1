/* Knobs: the named, typed scalars a user turns between runs (loss weights,
 * learning rate, batch, epochs, seed, split), set from "KEY=VALUE" text, either
 * in memory for one run or rewritten in a model.bin file; and a readable
 * description of a model (mtrun info). */
#ifndef MTR_KNOBS_H
#define MTR_KNOBS_H

#include "mtr/model.h"

#include <stdio.h>

/* Parses "KEY=VALUE" and sets knob KEY of m. Refuses (MTR_E_ARG, m unchanged)
 * an unknown key (the message suggests the closest knob name), a value that is
 * not a number of the knob's type ("0.5" or "abc" for an i32 knob), a value
 * that is not finite, and one out of the knob's range: train.batch > 0,
 * train.epochs >= 0, train.split in (0, 1), *.weight >= 0, *.lr > 0,
 * *.epsilon > 0, *.initial_accumulator >= 0, *.beta1 and *.beta2 in [0, 1).
 * An f32 knob keeps the value rounded to f32, as the file stores it. */
MtrStatus mtr_knob_assign(MtrModel *m, const char *key_eq_value, MtrError *err);

/* Reads the model.bin at path, applies the n assignments in order, and writes
 * it back atomically. On any error (unreadable file, bad assignment, failed
 * write) the file is left untouched and err says why. */
MtrStatus mtr_model_set_file(const char *path, int n, char **assignments, MtrError *err);

/* Prints a description of m to out: format version, name, programs with op
 * counts, knobs with values and types, parameters with symbolic shapes (and
 * bound sizes when trained), columns, tasks, and the trained state. */
void mtr_model_print_info(const MtrModel *m, FILE *out);

#endif
