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

#define MTR_FORMAT_VERSION 2
#define MTR_MAX_RANK       3
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
    /* What the runtime feeds an INPUT tensor (an MtrSource, sources.def) and
     * from which column; 0 and -1 for other roles. */
    uint8_t source;
    int32_t source_column;
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

/* What a program is for (programs.def). */
typedef enum {
#define X(E, n, id) MTR_PROG_##E = id,
#include "mtr/programs.def"
#undef X
} MtrProgramKind;

/* What a program's output means (outputs.def). */
typedef enum {
#define X(E, n, id, per_task, what) MTR_OUT_##E = id,
#include "mtr/outputs.def"
#undef X
} MtrOutputRole;

/* A typed output: its role, the task it belongs to (-1 for none), its tensor,
 * and for a gradient the parameter it is the gradient of (-1 otherwise). */
typedef struct {
    uint8_t role; /* MtrOutputRole */
    int32_t task, tensor, param;
} MtrOutput;

typedef struct {
    uint8_t kind; /* MtrProgramKind */
    char *name;   /* the kind's name, for people (not stored: made from the kind) */
    uint32_t n_ops;
    MtrOp *ops;
    uint32_t n_lifetimes; /* one per ACT tensor the program touches */
    MtrLifetime *lifetimes;
    uint32_t n_outputs;
    MtrOutput *outputs;
    /* The update boundary: ops [0, update_at) compute the loss and every
     * gradient, ops [update_at, n_ops) are the updates, which write only
     * parameters and optimizer state. n_ops for a program with no updates.
     * GRADIENT outputs are valid from update_at to the end of the run. */
    uint32_t update_at;
} MtrProgram;

/* What a size symbol is (symbols.def). */
typedef enum {
#define X(E, n, id, per_column) MTR_SYM_##E = id,
#include "mtr/symbols.def"
#undef X
} MtrSymbolKind;

/* What feeds an input tensor (sources.def); 0 for tensors that are not inputs. */
typedef enum {
    MTR_SRC_NONE = 0,
#define X(E, n, id, what) MTR_SRC_##E = id,
#include "mtr/sources.def"
#undef X
} MtrSource;

typedef enum { MTR_KNOB_F32 = 1, MTR_KNOB_I32 = 2 } MtrKnobType;

/* What a knob is (knobs.def): its range and what it belongs to. */
typedef enum {
#define X(E, n, id, type, lo, lo_open, hi, hi_open, scope, run) MTR_KNOB_##E = id,
#include "mtr/knobs.def"
#undef X
} MtrKnobKind;

/* One more than the largest knob kind id: the size of a table by kind. */
typedef union {
#define X(E, n, id, type, lo, lo_open, hi, hi_open, scope, run) char E[id + 1];
#include "mtr/knobs.def"
#undef X
} MtrKnobIds;
#define MTR_KNOB_KINDS sizeof(MtrKnobIds)

typedef struct {
    char *name; /* "rating.weight", "optimizer.lr", "train.batch", ... */
    uint8_t type;
    uint16_t kind; /* MtrKnobKind */
    double value;  /* stored on disk as the type says */
} MtrKnob;

typedef enum { MTR_COL_STRING = 1, MTR_COL_INT = 2, MTR_COL_FLOAT = 3 } MtrColType;

typedef struct {
    char *name;
    uint8_t type;      /* MtrColType */
    uint8_t is_label;  /* a label (target) rather than a feature */
    uint8_t lookup;    /* looked up in a vocabulary built from the data */
    uint8_t is_item;   /* an attribute of the candidate item (read from the items file) */
    uint8_t is_user;   /* names a row's user (at most one column; the compiler chooses) */
    int32_t vocab_sym; /* the symbol bound to its vocabulary's row count, or -1 */
    /* A derived label: 1 where column derived_from compares (compare, an
     * MtrCompare) with threshold, 0 where not, missing where it is missing;
     * derived_from -1 for a column read from the data. */
    int32_t derived_from;
    uint8_t compare;
    float threshold;
    /* A feature column (docs/dsl.md, "Features"): computed from data column
     * feature_of by `feature` (an MtrFeature), not read as it is; feature 0
     * and feature_of -1 for any other column. Its statistics and, for an
     * item list, the items' ids are taken from the training rows (featurize.c). */
    uint8_t feature;
    uint8_t tokens;      /* the value is split into words first */
    uint8_t is_list;     /* several ids a row: an input of (rows, max_len), -1 padded */
    int32_t feature_of;  /* the data column */
    int32_t feature_arg; /* hash: bins; discretize: buckets; lookup: min_count */
    uint32_t max_len;    /* a list's most ids a row, from the data (at least 1) */
    uint32_t n_stats;    /* normalize: mean, variance; discretize, bucketize: boundaries */
    float *stats;
    uint32_t n_item_lists; /* a list item column: item i's ids are item_lists[i * max_len ..] */
    int32_t *item_lists;
} MtrColumn;

/* What a feature column computes (features.def). */
typedef enum {
    MTR_FEAT_NONE = 0,
#define X(E, n, id, ids) MTR_FEAT_##E = id,
#include "mtr/features.def"
#undef X
} MtrFeature;

/* Comparisons of derived labels (compares.def). */
typedef enum {
    MTR_CMP_NONE = 0,
#define X(E, text, id) MTR_CMP_##E = id,
#include "mtr/compares.def"
#undef X
} MtrCompare;

/* Metrics (metrics.def); a task's metrics are bits 1 << id. */
typedef enum {
#define X(E, n, id, reads, takes_k) MTR_METRIC_##E = id,
#include "mtr/metrics.def"
#undef X
    MTR_METRIC_COUNT
} MtrMetric;

/* A task as the runtime sees it: a name, a weight, the label its predictions
 * are compared with, and the metrics it reports. What the task computes is in
 * the programs' typed outputs; the runtime knows no task kinds. */
typedef struct {
    char *name;
    char *about;      /* how the compiler describes it, for people ("ranking, loss mse") */
    uint32_t metrics; /* bits 1 << MtrMetric */
    uint32_t n_ks;
    int32_t ks[MTR_MAX_KS]; /* increasing */
    int32_t weight_knob;    /* index into knobs */
    int32_t label_column;   /* the column its predictions are compared with, or -1 */
    int32_t loss_metric;    /* the metric equal to its training loss on eval outputs, or -1 */
    int32_t sample_knob;    /* its `sample` knob: the share of training rows whose label it
                               trains on (a seeded choice of rows), or -1 for all */
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

/* A side table kept from the training rows (sides.c): for each distinct value
 * of column key (the user id, or the item), the values of the data columns
 * that are a function of it (a user's age and gender, an item's genres), so
 * that serving fills them from the key alone. values[r * (1 + n_columns)] is
 * row r's key, then its columns' values in order. */
typedef struct {
    int32_t key;
    uint32_t n_columns;
    int32_t *columns;
    uint32_t n_rows;
    char **values;
} MtrSideTable;

/* A size symbol: its kind and, for a per-column kind, the column. */
typedef struct {
    uint8_t kind; /* MtrSymbolKind */
    int32_t column;
} MtrSymbol;

typedef struct MtrModel {
    char *name;
    uint32_t n_symbols;
    MtrSymbol *symbol_info;
    char **symbols; /* their names, made from the kinds: "batch", "items", "k", "vocab.<column>" */
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
    uint32_t n_sides; /* side tables kept from the training rows, or 0 */
    MtrSideTable *sides;
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
/* Changes the model.bin at path in place: locks the file from before the read
 * until the changed model is in place, so that concurrent changes (`set`,
 * `import`) apply one after the other and none is lost; reads it, calls
 * change(m, ctx, err), writes it. On any error the file is untouched. */
typedef MtrStatus (*MtrModelChange)(MtrModel *m, void *ctx, MtrError *err);
MtrStatus mtr_model_change_file(const char *path, MtrModelChange change, void *ctx, MtrError *err);

/* Lookups by name (what a person types: knobs, columns, sizes in --size);
 * return the index or -1. */
int mtr_model_find_knob(const MtrModel *m, const char *name);
int mtr_model_find_symbol(const MtrModel *m, const char *name);
int mtr_model_find_column(const MtrModel *m, const char *name);
int mtr_model_find_tensor(const MtrModel *m, const char *name);
/* The column the compiler marked as naming a row's user (is_user), or -1:
 * a model without one, or a file written before mtrc recorded it. */
int mtr_model_user_column(const MtrModel *m);

/* Lookups by id and role, what the runtime uses; return the index or -1. */
int mtr_model_program(const MtrModel *m, MtrProgramKind kind);
int mtr_model_symbol(const MtrModel *m, MtrSymbolKind kind, int32_t column);
int mtr_model_knob(const MtrModel *m, MtrKnobKind kind);
/* The tensor of program p's output of `role` for `task` (-1: any task), or -1. */
int32_t mtr_program_output(const MtrModel *m, int p, MtrOutputRole role, int32_t task);

/* The names of kinds, for messages and dumps ("?" for an unknown one). */
const char *mtr_program_kind_name(unsigned kind);
const char *mtr_tensor_role_name(unsigned role); /* "act", "input", "param", "optstate", "state" */
const char *mtr_output_role_name(unsigned role);
const char *mtr_source_name(unsigned source);
const char *mtr_symbol_kind_name(unsigned kind);
const char *mtr_metric_name(unsigned metric);
/* The metric's row: the output role it reads and whether it takes cut-offs. */
MtrOutputRole mtr_metric_reads(unsigned metric);
int mtr_metric_takes_k(unsigned metric);

/* The text of comparison c (">="), or "?"; and the comparison itself: 1 when
 * x compares with t, 0 when not (a NaN x is never compared: the caller keeps it missing). */
const char *mtr_compare_text(unsigned c);
int mtr_compare(unsigned c, double x, double t);

/* Makes the printed name of symbol i from its kind and column into a fresh
 * string; NULL when out of memory. */
char *mtr_symbol_name_make(const MtrModel *m, uint32_t i);

/* A knob kind's row (knobs.def). */
typedef enum { MTR_SCOPE_MODEL, MTR_SCOPE_TASK, MTR_SCOPE_STAGE } MtrKnobScope;
typedef struct {
    const char *name; /* whole (model scope) or the last part */
    uint8_t type;     /* MtrKnobType */
    double min, max;
    uint8_t min_open, max_open;
    uint8_t scope; /* MtrKnobScope */
    uint8_t run;   /* a run may override it */
} MtrKnobInfo;
/* The row of knob kind `kind`, or NULL for an unknown kind. */
const MtrKnobInfo *mtr_knob_info(unsigned kind);
/* Returns 0 when v is within the range of knob kind `kind`; else -1 with the
 * rule it breaks written to rule ("must be > 0", "must be in [0, 1)"). */
int mtr_knob_check(unsigned kind, double v, char *rule, size_t n);

/* The number of elements of tensor t with symbols bound to `values`. */
int64_t mtr_tensor_elems(const MtrTensor *t, const int64_t *values);

#endif
