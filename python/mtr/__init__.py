"""Serve a trained mtr model (model.bin) from Python.

A binding over libmtr's C API (mtr.h) with ctypes and NumPy: no compiled
extension. The library is found, in this order, at $MTR_LIB, in the source
tree's build/lib, then by the system's loader (libmtr.so.0, as installed by
`cmake --install`).

    import mtr
    m = mtr.Model("model.bin")
    ids, scores = m.recommend(["42"], k=10)      # (1, 10) item rows and scores
    m.item_labels[ids[0, 0]]                     # the best item's label
    m.predict({"user_id": ["42"], "movie_title": ["Star Wars (1977)"]})
    m.item_vectors()                             # (items, D), for an ANN index
    m.query_vectors(["42"])                      # (1, D)

Rows are given by column: a dict {column: sequence of values}, one value per
row (numbers may be given as numbers). Where the rows are users, a plain
sequence of user ids will do. Errors raise mtr.Error with libmtr's message.
A Model may be used from several threads at once (each call binds its own
session in the library, and ctypes releases the GIL during the call).
"""

import ctypes
import ctypes.util
import os

import numpy as np

__all__ = ["Model", "Error", "load_library", "version"]

_MTR_TASK_PREDICTS = 1
_MTR_TASK_VECTORS = 2
_MTR_TASK_RECOMMENDS = 4
_MTR_ROWS_UNKNOWN_OK = 1


class Error(Exception):
    """A libmtr error: .status is the MtrStatus code, str() its message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class _Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * 1024)]


class _Rows(ctypes.Structure):
    _fields_ = [
        ("n_rows", ctypes.c_size_t),
        ("n_columns", ctypes.c_int),
        ("columns", ctypes.POINTER(ctypes.c_char_p)),
        ("values", ctypes.POINTER(ctypes.c_char_p)),
        ("flags", ctypes.c_uint),
    ]


class _RecommendOptions(ctypes.Structure):
    _fields_ = [
        ("task", ctypes.c_int),
        ("exclude_start", ctypes.POINTER(ctypes.c_size_t)),
        ("exclude", ctypes.POINTER(ctypes.c_int64)),
    ]


_lib = None


def _candidates():
    if os.environ.get("MTR_LIB"):
        yield os.environ["MTR_LIB"]
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "..", "..", "build", "lib", "libmtr.so")
    found = ctypes.util.find_library("mtr")
    if found:
        yield found
    yield "libmtr.so.0"


def load_library(path=None):
    """Loads libmtr (from path, else as the module docstring says); returns it."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    errors = []
    for cand in [path] if path else _candidates():
        try:
            lib = ctypes.CDLL(cand)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise OSError("libmtr not found (set MTR_LIB): " + "; ".join(errors))
    P, S, I, U, D = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_double
    E = ctypes.POINTER(_Error)
    F = ctypes.POINTER(ctypes.c_float)
    sig = {
        "mtr_version": (S, []),
        "mtr_open": (I, [S, ctypes.POINTER(P), E]),
        "mtr_open_buffer": (I, [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(P), E]),
        "mtr_close": (None, [P]),
        "mtr_name": (S, [P]),
        "mtr_trained": (I, [P]),
        "mtr_task_count": (I, [P]),
        "mtr_task_name": (S, [P, I]),
        "mtr_task_flags": (U, [P, I]),
        "mtr_vector_dim": (I, [P, I]),
        "mtr_input_count": (I, [P]),
        "mtr_input_name": (S, [P, I]),
        "mtr_input_type": (I, [P, I]),
        "mtr_input_is_item": (I, [P, I]),
        "mtr_knob_count": (I, [P]),
        "mtr_knob_name": (S, [P, I]),
        "mtr_knob_value": (D, [P, I]),
        "mtr_set_knob": (I, [P, S, D, E]),
        "mtr_item_count": (ctypes.c_int64, [P]),
        "mtr_item_label": (S, [P, ctypes.c_int64]),
        "mtr_predict": (I, [P, ctypes.POINTER(_Rows), F, E]),
        "mtr_recommend": (I, [P, ctypes.POINTER(_Rows), I, ctypes.POINTER(_RecommendOptions),
                              ctypes.POINTER(ctypes.c_int64), F, E]),
        "mtr_query_vectors": (I, [P, I, ctypes.POINTER(_Rows), F, E]),
        "mtr_item_vectors": (I, [P, I, F, E]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    if path is None:
        _lib = lib
    return lib


def version():
    """The loaded libmtr's version, e.g. "0.1.0"."""
    return load_library().mtr_version().decode()


def _text(v):
    if isinstance(v, bytes):
        return v
    if isinstance(v, (float, np.floating)):
        return repr(float(v)).encode()
    return str(v).encode("utf-8")


def _fptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class Model:
    """A trained model opened from a model.bin path, or from its bytes (data=)."""

    def __init__(self, path=None, *, data=None, lib=None):
        self._lib = load_library(lib)
        self._h = ctypes.c_void_p()
        err = _Error()
        if data is not None:
            rc = self._lib.mtr_open_buffer(bytes(data), len(data), ctypes.byref(self._h), err)
        else:
            rc = self._lib.mtr_open(os.fsencode(path), ctypes.byref(self._h), err)
        if rc:
            self._h = None
            raise Error(rc, err.msg.decode("utf-8", "replace"))
        L, h = self._lib, self._h
        self.name = L.mtr_name(h).decode()
        self.tasks = [L.mtr_task_name(h, t).decode() for t in range(L.mtr_task_count(h))]
        self._flags = [L.mtr_task_flags(h, t) for t in range(len(self.tasks))]
        self.inputs = [L.mtr_input_name(h, i).decode() for i in range(L.mtr_input_count(h))]
        self.item_inputs = [n for i, n in enumerate(self.inputs) if L.mtr_input_is_item(h, i)]
        self.predict_tasks = [t for t, f in zip(self.tasks, self._flags) if f & _MTR_TASK_PREDICTS]
        self.recommend_task = next(
            (t for t, f in zip(self.tasks, self._flags) if f & _MTR_TASK_RECOMMENDS), None)
        n = L.mtr_item_count(h)
        self.item_labels = [L.mtr_item_label(h, i).decode("utf-8") for i in range(n)]

    def close(self):
        if self._h:
            self._lib.mtr_close(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def trained(self):
        return bool(self._lib.mtr_trained(self._h))

    @property
    def knobs(self):
        """The knobs and their values, as a dict."""
        L, h = self._lib, self._h
        return {L.mtr_knob_name(h, k).decode(): L.mtr_knob_value(h, k)
                for k in range(L.mtr_knob_count(h))}

    def set_knob(self, name, value):
        err = _Error()
        rc = self._lib.mtr_set_knob(self._h, name.encode(), float(value), err)
        self._check(rc, err)

    # ---- helpers

    def _check(self, rc, err):
        if rc:
            raise Error(rc, err.msg.decode("utf-8", "replace"))

    def _task(self, task):
        if task is None:
            return -1
        if task not in self.tasks:
            raise Error(4, "no task '%s' (the tasks are %s)" % (task, ", ".join(self.tasks)))
        return self.tasks.index(task)

    def _rows(self, rows, unknown_ok):
        """A _Rows (and the objects it points into) from columns or user ids."""
        if not isinstance(rows, dict):
            users = [n for n in self.inputs if n not in self.item_inputs]
            if not users:
                raise Error(4, "the model has no query input: give the rows as a dict")
            rows = {users[0]: list(rows)}
        cols = list(rows)
        data = [list(rows[c]) for c in cols]
        n = len(data[0]) if data else 0
        if any(len(d) != n for d in data):
            raise Error(4, "the columns have different lengths")
        names = (ctypes.c_char_p * len(cols))(*[c.encode() for c in cols])
        vals = (ctypes.c_char_p * max(1, n * len(cols)))()
        for c, d in enumerate(data):
            for r, v in enumerate(d):
                vals[r * len(cols) + c] = _text(v)
        flags = _MTR_ROWS_UNKNOWN_OK if unknown_ok else 0
        return _Rows(n, len(cols), names, vals, flags), (names, vals), n

    # ---- running

    def predict(self, rows, task=None, unknown_ok=False):
        """Every ranking task's output per row: an (n_rows, len(predict_tasks))
        float32 array, columns in predict_tasks order; with task=NAME, that
        task's (n_rows,) outputs."""
        r, keep, n = self._rows(rows, unknown_ok)
        out = np.empty((n, len(self.tasks)), dtype=np.float32)
        err = _Error()
        self._check(self._lib.mtr_predict(self._h, ctypes.byref(r), _fptr(out), err), err)
        if task is not None:
            t = self._task(task)
            if not self._flags[t] & _MTR_TASK_PREDICTS:
                raise Error(4, "task '%s' does not predict" % task)
            return out[:, t].copy()
        return out[:, [self.tasks.index(t) for t in self.predict_tasks]]

    def recommend(self, users, k=10, exclude=None, task=None, unknown_ok=False):
        """The k best items per query: (ids, scores), two (n_rows, k) arrays,
        int64 item rows (index item_labels) and float32 scores, best first.
        users: user ids, or a dict of query columns. exclude: per row, a
        sequence of item rows not to recommend (e.g. those already seen)."""
        r, keep, n = self._rows(users, unknown_ok)
        ids = np.empty((n, k), dtype=np.int64)
        scores = np.empty((n, k), dtype=np.float32)
        opt = _RecommendOptions(self._task(task), None, None)
        if exclude is not None:
            if len(exclude) != n:
                raise Error(4, "exclude needs one list per row")
            start = np.zeros(n + 1, dtype=np.uintp)
            start[1:] = np.cumsum([len(e) for e in exclude])
            flat = np.ascontiguousarray(
                np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude] or
                               [np.zeros(0, np.int64)]), dtype=np.int64)
            keep = keep + (start, flat)
            opt.exclude_start = start.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t))
            opt.exclude = flat.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))
        err = _Error()
        rc = self._lib.mtr_recommend(self._h, ctypes.byref(r), int(k), ctypes.byref(opt),
                                     ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
                                     _fptr(scores), err)
        self._check(rc, err)
        return ids, scores

    def vector_dim(self, task=None):
        if task is None and self.recommend_task is None:
            raise Error(7, "the model has no retrieval task")
        t = self._task(task if task is not None else self.recommend_task)
        return self._lib.mtr_vector_dim(self._h, t)

    def item_vectors(self, task=None):
        """The candidate tower's final vectors: (n_items, D) float32, rows in
        item_labels order."""
        t = self._task(task)
        dim = self.vector_dim(task)
        out = np.empty((len(self.item_labels), dim), dtype=np.float32)
        err = _Error()
        self._check(self._lib.mtr_item_vectors(self._h, t, _fptr(out), err), err)
        return out

    def query_vectors(self, rows, task=None, unknown_ok=False):
        """The query tower's final vectors: (n_rows, D) float32; a row's score
        for item i is the dot product with item_vectors()[i]."""
        r, keep, n = self._rows(rows, unknown_ok)
        out = np.empty((n, self.vector_dim(task)), dtype=np.float32)
        err = _Error()
        rc = self._lib.mtr_query_vectors(self._h, self._task(task), ctypes.byref(r), _fptr(out),
                                         err)
        self._check(rc, err)
        return out
