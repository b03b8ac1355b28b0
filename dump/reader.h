/*
 * reader.h - open and validate a diverge-dump file, list its passes and
 * tensors, read tensors as float or double.
 *
 * dv_reader_open() validates the whole structure up front (schema name and
 * version, required attributes and their types, every pass group and every
 * dataset's type, attributes and shape against the model description), so
 * after it succeeds only the data itself can still fail to read (a file
 * corrupted in the middle). Every failure is DV_E_INPUT "PATH: problem".
 */
#ifndef DV_READER_H
#define DV_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "diverge.h"
#include "model.h"
#include "schema.h"

/* One root attribute as stored. */
struct dv_reader_attr {
    char key[64];
    int kind;       /* enum dv_attr_kind */
    char *str;      /* DV_ATTR_STR: UTF-8, NUL-terminated (owned) */
    int64_t i;      /* DV_ATTR_INT */
    double r;       /* DV_ATTR_REAL */
};

struct dv_reader_tensor {
    char name[DV_SCHEMA_MAX_NAME];
    int layer;               /* -1 outside layers */
    char op[32];
    int64_t order;           /* execution index in the pass */
    int n_dims;
    int64_t shape[4];        /* row-major, outermost first */
    int64_t n_elems;
    int stored_bytes;        /* 4 (float32) or 8 (float64); 2 for float16 */
    bool known;              /* a name of design.md's table */
    struct dv_schema_tensor id; /* valid when known */
};

struct dv_reader_pass {
    int64_t index;           /* from the group name */
    int64_t pos0, n_tokens;
    int32_t *tokens;         /* [n_tokens] */
    int n_tensors;
    struct dv_reader_tensor *tensors; /* sorted by order */
};

struct dv_reader {
    char *path;
    struct dv_config cfg;    /* arch and shape hyperparameters from the attrs */
    int n_attrs;
    struct dv_reader_attr *attrs;  /* in the file's order */
    int n_passes;
    struct dv_reader_pass *passes; /* sorted by index */
    int64_t file;            /* the HDF5 file id (hid_t), open while r lives */
    void *map;               /* the file mapped read-only, or NULL */
    size_t map_size;
    int64_t map_base;        /* HDF5 addresses start here (the user block) */
};

/* A run of a tensor's values in place: elements first .. first + n - 1
 * (flat, row-major) at data, in the tensor's stored type. */
struct dv_reader_span {
    int64_t first, n;
    const void *data;
};

dv_status dv_reader_open(const char *path, struct dv_reader **out);
/* The same, after validating the file in a child process: a file that
 * makes the HDF5 library itself crash (it does on some corrupt files:
 * a damaged attribute table, global heap or chunk index) gives DV_E_INPUT
 * "PATH: the HDF5 library crashed reading it ..." instead of taking the
 * caller down. with_data: the child also reads every tensor once (the
 * file is then read twice; the second time mostly from the page cache).
 * For programs (the CLI), not for libraries inside multithreaded hosts. */
dv_status dv_reader_open_isolated(const char *path, bool with_data,
                                  struct dv_reader **out);
void dv_reader_free(struct dv_reader *r);

/* Root attribute `key`, or NULL. */
const struct dv_reader_attr *dv_reader_attr(const struct dv_reader *r,
                                            const char *key);
/* String attribute or "" when absent / not a string. */
const char *dv_reader_str(const struct dv_reader *r, const char *key);

/* The declared arithmetic a dump records (root attributes act_quant,
 * act_quant_types and kv_type; diverge-dump(5), core/arith.h). A dump
 * without act_quant or kv_type (written before they existed, or by another
 * engine's writer that does not say) declares nothing: declared is false
 * and the strings it lacks are "". Strings longer than the fields are cut. */
struct dv_reader_arith {
    bool declared;
    char act_quant[32];        /* "none", "auto", "q8_0", "q8_1", "q8_K", "f16" */
    char act_quant_types[256]; /* per weight type: "f32=none,q8_0=q8_0" */
    char kv_type[16];          /* "f32", "f16", "q8_0" */
    char attn_quant[8];        /* "none", "q", "qp"; "" when absent */
};
void dv_reader_arith(const struct dv_reader *r, struct dv_reader_arith *out); /* reader_arith.c */

/* Position in r->passes of pass `index`, or -1. */
int dv_reader_find_pass(const struct dv_reader *r, int64_t index);
/* Position in r->passes[p].tensors of tensor `name`, or -1. */
int dv_reader_find_tensor(const struct dv_reader *r, int p, const char *name);

/* Read tensor t of pass p (positions in the arrays above) into out, which
 * holds n_elems values of `type` (DV_TYPE_F32 or DV_TYPE_F64; HDF5
 * converts). DV_E_INPUT when the data cannot be read. */
dv_status dv_reader_read(const struct dv_reader *r, int p, int t, int type,
                         void *out);

/* The values of tensor t of pass p in place, without a copy: up to max
 * spans into the read-only mapping of the file, sorted, covering the
 * tensor exactly, valid while r lives. Returns their count, or 0 when the
 * values must be read with dv_reader_read (compressed, float16,
 * big-endian or misaligned storage, chunks that split a row, more than
 * max chunks). Dumps as diverge writes them by default are mapped. The
 * file must not be truncated while r is open (the mapping would fault). */
int dv_reader_spans(const struct dv_reader *r, int p, int t, struct dv_reader_span *out,
                    int max);

/* The same for rows row0 .. row0 + n_rows - 1 of the outermost dimension
 * (a row is shape[1] x shape[2] x ... elements), for reading a large
 * tensor in pieces. DV_E_USAGE for rows outside the tensor. */
dv_status dv_reader_read_rows(const struct dv_reader *r, int p, int t, int type,
                              int64_t row0, int64_t n_rows, void *out);

#endif
