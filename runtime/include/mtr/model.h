/* The in-memory form of model.bin: what mtrc emits, what format.c writes and
 * reads, and what the runtime binds and executes. Everything a MtrModel points
 * to is owned by it and released by mtr_model_free. docs/format.md gives the
 * bytes on disk; this header gives their meaning. */
#ifndef MTR_MODEL_H
#define MTR_MODEL_H

#include "mtr/ops.h"
#include "mtr/status.h"

#include <stddef.h>
#include <stdint.h>

#define MTR_FORMAT_VERSION 1
#define MTR_MAX_RANK       2
#define MTR_MAX_KS         8

typedef enum { MTR_DT_F32 = 1, MTR_DT_I32 = 2 } MtrDType;

typedef enum {
    MTR_ROLE_ACT = 0,      /* a program's temporary, placed by its lifetime */
    MTR_ROLE_INPUT = 1,    /* fed by the runtime before a program runs (see source) */
    MTR_ROLE_PARAM = 2,    /* trained and saved */
    MTR_ROLE_OPTSTATE = 3, /* optimizer state, saved */
    MTR_ROLE_STATE = 4,    /* long-lived between programs, not saved (item embeddings) */
} MtrRole;

typedef enum {
    MTR_INIT_NONE = 0,
    MTR_INIT_ZEROS = 1,
    MTR_INIT_CONST = 2,   /* every element init_arg */
    MTR_INIT_UNIFORM = 3, /* uniform(-init_arg, init_arg) */
    MTR_INIT_GLOROT = 4,  /* uniform(+-sqrt(6 / (rows + cols))) */
    MTR_INIT_KNOB = 5,    /* every element the value of knob (int)init_arg */
} MtrInit;

/* One extent: k when sym < 0, else k times the value bound to symbol sym. */
typedef struct {
    int32_t sym;
    int32_t k;
} MtrDim;

typedef struct {
    char *name;
    uint8_t dtype, role, rank, init; /* MtrDType, MtrRole, 0..2, MtrInit */
    float init_arg;
    MtrDim dim[MTR_MAX_RANK];
    /* What the runtime feeds an INPUT tensor, "" for other roles:
     *   "column:NAME"   the batch's values of column NAME (vocabulary ids for a
     *                   looked-up column, numbers for a float or int column)
     *   "items:NAME"    column NAME's vocabulary id for every item (N rows)
     *   "true_row:NAME" for each batch row, the first item whose NAME equals it */
    char *source;
} MtrTensor;

typedef struct {
    OpKind kind;
    int32_t in[MTR_MAX_IN]; /* tensor ids; only the op's n_in/n_out are used */
    int32_t out[MTR_MAX_OUT];
    int32_t iattr[MTR_MAX_IATTR];
    float fattr[MTR_MAX_FATTR];
} MtrOp;

/* A tensor's life inside one program: it is written first at op `first` and
 * read last at op `last` (positions in the program). `alias` >= 0 names a
 * tensor whose buffer it shares (an in-place op); the two lifetimes then join. */
typedef struct {
    int32_t tensor;
    int32_t first, last;
    int32_t alias;
} MtrLifetime;

typedef struct {
    char *name; /* train_step, eval_step, predict, embed_items, recommend */
    uint32_t n_ops;
    MtrOp *ops;
    uint32_t n_lifetimes; /* one per ACT tensor the program touches */
    MtrLifetime *lifetimes;
} MtrProgram;

typedef enum { MTR_KNOB_F32 = 1, MTR_KNOB_I32 = 2 } MtrKnobType;

typedef struct {
    char *name; /* "rating.weight", "optimizer.lr", "train.batch", ... */
    uint8_t type;
    double value; /* stored on disk as the type says */
} MtrKnob;

typedef enum { MTR_COL_STRING = 1, MTR_COL_INT = 2, MTR_COL_FLOAT = 3 } MtrColType;

typedef struct {
    char *name;
    uint8_t type;      /* MtrColType */
    uint8_t is_label;  /* a label (target) rather than a feature */
    uint8_t lookup;    /* looked up in a vocabulary built from the data */
    uint8_t is_item;   /* an attribute of the candidate item (read from the items file) */
    int32_t vocab_sym; /* the symbol bound to its vocabulary's row count, or -1 */
} MtrColumn;

typedef enum { MTR_TASK_RANKING = 1, MTR_TASK_RETRIEVAL = 2 } MtrTaskKind;
typedef enum { MTR_LOSS_MSE = 1, MTR_LOSS_BCE = 2, MTR_LOSS_SOFTMAX = 3 } MtrLossKind;
enum {
    MTR_METRIC_RMSE = 1u << 0,
    MTR_METRIC_MAE = 1u << 1,
    MTR_METRIC_AUC = 1u << 2,
    MTR_METRIC_TOPK = 1u << 3,
};

typedef struct {
    char *name;
    uint8_t kind, loss; /* MtrTaskKind, MtrLossKind */
    uint32_t metrics;   /* MTR_METRIC_* bits */
    uint32_t n_ks;
    int32_t ks[MTR_MAX_KS]; /* increasing */
    int32_t weight_knob;    /* index into knobs */
    int32_t label_column;   /* ranking: the label's column; retrieval: -1 */
    int32_t loss_tensor;    /* train_step: the task's unweighted loss () */
    int32_t eval_tensor;    /* eval_step: prediction (B,1) or rank (B) */
} MtrTask;

typedef struct {
    int32_t column; /* the looked-up column */
    uint32_t n;     /* words; row i + 1 of the table is words[i], row 0 is out-of-vocabulary */
    char **words;   /* sorted by strcmp, distinct, UTF-8 */
} MtrVocab;

/* The candidate items (every row of the item file, duplicates included). */
typedef struct {
    uint32_t n;
    char **labels;      /* what recommend prints for an item */
    uint32_t n_columns; /* item attributes the candidate tower reads */
    int32_t *columns;   /* their column ids */
    int32_t **ids;      /* ids[c][i]: item i's vocabulary id in columns[c] */
} MtrItems;

typedef struct MtrModel {
    char *name;
    uint32_t n_symbols;
    char **symbols; /* "batch", "items", "k", "vocab.<column>" */
    uint32_t n_tensors;
    MtrTensor *tensors;
    uint32_t n_programs;
    MtrProgram *programs;
    uint32_t n_knobs;
    MtrKnob *knobs;
    uint32_t n_columns;
    MtrColumn *columns;
    uint32_t n_tasks;
    MtrTask *tasks;

    /* Present once trained (or imported): sizes bound, parameters, vocabularies. */
    int trained;
    int64_t *symbol_values; /* n_symbols, or NULL */
    float **param_data;     /* n_tensors entries, non-NULL for PARAM and OPTSTATE */
    uint32_t n_vocabs;
    MtrVocab *vocabs;
    MtrItems items;
} MtrModel;

/* Allocates an empty model; returns NULL when out of memory. */
MtrModel *mtr_model_new(void);
/* Releases the model and all it owns; NULL is fine. */
void mtr_model_free(MtrModel *m);

/* Serialises m into a fresh malloc'd buffer (*buf, *len); the caller frees it. */
MtrStatus mtr_model_encode(const MtrModel *m, uint8_t **buf, size_t *len, MtrError *err);
/* Parses and validates a model from memory; on success *out is a new model. Every
 * count, offset, size, index and checksum is checked before use; errors name the
 * section and offset. `what` names the source in messages (a path). */
MtrStatus mtr_model_decode(const uint8_t *buf, size_t len, const char *what, MtrModel **out,
                           MtrError *err);
/* Reads and validates a model.bin file. */
MtrStatus mtr_model_read(const char *path, MtrModel **out, MtrError *err);
/* Writes m to path atomically: a temporary file beside it, fsync, then rename;
 * on any error the old file is untouched and no temporary file is left. */
MtrStatus mtr_model_write(const MtrModel *m, const char *path, MtrError *err);

/* Lookups by name; return the index or -1. */
int mtr_model_find_knob(const MtrModel *m, const char *name);
int mtr_model_find_program(const MtrModel *m, const char *name);
int mtr_model_find_symbol(const MtrModel *m, const char *name);
int mtr_model_find_column(const MtrModel *m, const char *name);
int mtr_model_find_tensor(const MtrModel *m, const char *name);

/* The number of elements of tensor t with symbols bound to `values`. */
int64_t mtr_tensor_elems(const MtrTensor *t, const int64_t *values);

#endif
