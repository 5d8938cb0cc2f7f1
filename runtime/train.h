/* The train loop's pieces a sweep (sweep.c) drives run by run: the data read
 * once, then for each run a slot that splits the rows by the run's model and
 * binds a session for it (kept from run to run while the batch stays), and
 * trains and tests fresh parameters. A slot is used by one thread at a time;
 * slots of different models share nothing but the dataset, which they only
 * read. Internal to libmtr. */
#ifndef MTR_TRAIN_H
#define MTR_TRAIN_H

#include "mtr/data.h"
#include "mtr/run.h"

#include <stddef.h>

typedef struct TrainSlot TrainSlot;

/* Reads o's data folder and replaces m's vocabularies and items with ones
 * built from it, as training does. *ds is freed with mtr_data_free. */
MtrStatus train_data_load(MtrModel *m, const MtrRunOptions *o, MtrDataset **ds, MtrError *err);

/* An empty slot, or NULL out of memory. */
TrainSlot *train_slot_new(void);
void train_slot_free(TrainSlot *t);

/* Splits ds by m's knobs (train.seed, train.split), learning m's feature
 * statistics and side tables from the training rows (m is written), and binds
 * the slot's session for m (again when m or the bound batch changed; else the
 * knobs are set anew). The slot keeps m until the next prepare. */
MtrStatus train_slot_prepare(TrainSlot *t, MtrModel *m, const MtrDataset *ds,
                             const MtrRunOptions *o, MtrError *err);

/* About what a prepared slot holds in memory: its arenas, a copy of the
 * parameters for early stopping, and its split's encoded rows. */
size_t train_slot_bytes(const TrainSlot *t);

/* Trains fresh parameters (from the model's train.seed, or o->init_dir) on
 * the prepared split and tests them, as mtr_run_train does, into *res (whose
 * reports the caller frees); the split is freed either way. */
MtrStatus train_slot_run(TrainSlot *t, const MtrDataset *ds, const MtrRunOptions *o,
                         MtrRunResult *res, MtrError *err);

#endif
