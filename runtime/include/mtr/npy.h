/* Export and import of a trained model's numbers as files other tools read
 * (runtime stage: after training). NumPy's .npy (format 1.0 written; 1.0 and
 * 2.0 read) for tensors, plain text for vocabularies and items.
 *
 * A folder written by mtr_export_dir holds:
 *   <tensor>.npy        every PARAM and OPTSTATE tensor, little-endian float32
 *                       ('<f4'; an int32 tensor is '<i4'), C order, with the
 *                       shape bound by the model's symbol values: () for a
 *                       scalar, (n,) for rank 1, (rows, cols) for rank 2.
 *   vocab.<column>.txt  each vocabulary, one word per line, UTF-8, in id order
 *                       starting at id 1: line i is row i of the column's
 *                       embedding table. Row 0, the out-of-vocabulary row, has
 *                       no line (so the table has one row more than the file).
 *   items.txt           the candidate items' labels, one per line, in item order
 *                       (row i of an item embedding matrix).
 * File names: every byte of a tensor or column name outside [A-Za-z0-9._-],
 * and a leading '.', becomes '_' ("user/emb" -> "user_emb.npy"). Two names
 * that map to the same file are refused at export. */
#ifndef MTR_NPY_H
#define MTR_NPY_H

#include "mtr/model.h"
#include "mtr/status.h"

#include <stddef.h>
#include <stdint.h>

/* Writes a float32 array of rank 0..2 (shape[0..rank-1], each >= 0) as a .npy
 * 1.0 file, replacing path atomically (a temporary file beside it, then rename). */
MtrStatus mtr_npy_write(const char *path, const float *data, int rank, const int64_t *shape,
                        MtrError *err);

/* Reads a .npy file of float32 ('<f4', C order, rank 0..2, version 1.0 or 2.0).
 * On success *data is a malloc'd array the caller frees (never NULL, even for
 * zero elements), *rank its rank and shape[0..rank-1] its extents. Anything
 * else (bad magic, another version, descr or order, a malformed header, a
 * file shorter or longer than the shape says) is MTR_E_FORMAT with a message
 * that names the file. */
MtrStatus mtr_npy_read(const char *path, float **data, int *rank, int64_t shape[MTR_MAX_RANK],
                       MtrError *err);

/* Writes lines[0..n) (NULL as an empty line), each followed by '\n', to path,
 * replaced atomically like mtr_npy_write. */
MtrStatus mtr_text_write_lines(const char *path, char *const *lines, uint32_t n, MtrError *err);

/* Writes the final vectors of a trained model into dir (which exists), for an
 * ANN index: for every retrieval task T, T.item_vectors.npy (items x D, rows
 * in the order of items.txt); for the task recommend serves, also
 * T.query_vectors.npy (queries x D) and T.queries.tsv (a header of the query
 * columns, then one query per line, in the order of the vectors' rows). The
 * queries are the distinct query-column values of data_dir's interactions,
 * in first-seen order; with data_dir NULL, the words of the query's
 * vocabulary when the query reads one looked-up column (else no query files).
 * An item's score for a query is the dot product of their vectors. */
MtrStatus mtr_export_vectors(const MtrModel *m, const char *dir, const char *data_dir,
                             MtrError *err);

/* The file name stem for a tensor or column name (see above): writes at most
 * cap bytes with the NUL; returns the length it needs (snprintf-style). */
size_t mtr_npy_file_stem(char *buf, size_t cap, const char *name);

/* Writes every PARAM and OPTSTATE tensor, every vocabulary and the items of the
 * trained model m into dir (created, with its parents, when missing). Errors:
 * MTR_E_STATE when m is untrained (no symbol values or parameters), MTR_E_ARG
 * for two names mapping to one file or a word holding a line break, MTR_E_IO
 * naming the file that could not be written. */
MtrStatus mtr_export_dir(const MtrModel *m, const char *dir, MtrError *err);

/* Reads back the .npy file of every PARAM and OPTSTATE tensor of m from dir.
 * m must have bound sizes (m->symbol_values, i.e. trained or read from a
 * trained model.bin): each file's shape must equal its tensor's bound shape,
 * or the error names the file, the expected and the found shape. Vocabulary
 * and item files, where present, must match m's word for word (else the
 * embeddings would be read against other ids); missing ones are not an error.
 * All or nothing: m->param_data is replaced only when every file is valid, and
 * m is untouched on any error. Marks m trained on success. */
MtrStatus mtr_import_dir(MtrModel *m, const char *dir, MtrError *err);

#endif
