/*
 * diverge.h - the public C API of libdiverge.
 *
 * diverge finds where a GPU inference engine's numbers leave a trusted
 * reference. This header is the part other programs link against: status
 * codes, error messages, and the dump writer, through which any engine
 * writes its tensors in diverge's HDF5 schema (diverge-dump(5)) so that
 * `diverge compare` can line them up with the reference. No HDF5 type
 * appears here: callers need neither HDF5's headers nor its library.
 *
 * Conventions: every function returns a dv_status; on failure a one-line
 * message naming the file and the problem is kept per thread and read with
 * dv_errmsg(). Nothing here prints or exits.
 */
#ifndef DIVERGE_H
#define DIVERGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DV_VERSION_MAJOR 0
#define DV_VERSION_MINOR 1
#define DV_VERSION_PATCH 0
#define DV_VERSION_STRING "0.1.0"

/* Status codes. The CLI maps them to exit codes: INPUT and USAGE give 2,
 * IO, NOMEM, DEVICE and RUNTIME give 3. */
typedef enum dv_status {
    DV_OK = 0,
    DV_E_INPUT,   /* a file or value given to us is malformed or inconsistent */
    DV_E_USAGE,   /* the caller asked for something that makes no sense */
    DV_E_IO,      /* reading or writing failed (disk full, permissions) */
    DV_E_NOMEM,   /* an allocation failed */
    DV_E_DEVICE,  /* no usable compute device, or the device failed */
    DV_E_RUNTIME, /* any other failure while running */
    DV_STATUS_COUNT
} dv_status;

/* Short lower-case name of a status ("ok", "input", ...); "?" if out of range. */
const char *dv_status_name(dv_status s);

/* The message of the last failure on this thread. Never NULL; "" when no
 * failure was recorded. The pointer stays valid until the next failure on
 * this thread. */
const char *dv_errmsg(void);

/* The library version as "MAJOR.MINOR.PATCH". */
const char *dv_version(void);

/* ---- writing dumps ----------------------------------------------------
 *
 * One dump file holds the named tensors of one or more forward passes of
 * one model (design.md's table: blk.L.q_rope, logits, ...), schema
 * "diverge-dump" version DV_DUMP_SCHEMA_VERSION. The calls, in order:
 *
 *   dv_dump_create(path, backend, flags, &d)
 *   dv_dump_set_str / _int / _real (d, key, value)   model description
 *   for each forward pass:
 *       dv_dump_begin_pass(d, pos0, n_tokens, tokens)
 *       dv_dump_write(d, name, layer, op, order, n_dims, shape, type, data)
 *       dv_dump_end_pass(d)
 *   dv_dump_close(d, commit)
 *
 * The file is written under a temporary name in the destination's
 * directory (".NAME.XXXXXX.part") and renamed onto `path` only by a
 * successful dv_dump_close(d, 1); a file already at `path` is untouched
 * until then. A failed call leaves the dump unusable: every later call
 * fails and dv_dump_close() discards the temporary file. A process killed
 * before closing leaves the temporary file; the next dv_dump_create() for
 * the same destination removes it (it checks that no live writer holds it).
 * The library installs no signal handlers.
 *
 * Required before the first pass: the model description keys "arch"
 * (string) and "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv",
 * "n_ff" (integers). Optional: "head_dim" (default n_embd / n_head),
 * "n_rot", "n_ctx_train" (integers), "rope_freq_base", "rms_eps" (reals),
 * "rope_type" ("norm" or "neox"), "device", "driver", "model_path",
 * "model_sha256", "inject" (strings). Other keys matching [A-Za-z0-9_.-]+
 * are stored as given. "schema", "schema_version", "tool_version",
 * "created_utc" and "backend" are set by the library.
 *
 * Not thread-safe: one thread at a time per process may use the writer
 * (HDF5, as Debian builds it, is not thread-safe).
 */

#define DV_DUMP_SCHEMA_VERSION 1
/* Bumped when a function below changes incompatibly. */
#define DV_DUMP_API_VERSION 1

/* Element types of the data handed to dv_dump_write(). The values are
 * ggml's type ids, so a ggml tensor's `type` can be passed as is. */
enum dv_dump_type {
    DV_DUMP_F32 = 0,
    DV_DUMP_F16 = 1,
    DV_DUMP_F64 = 28,
    DV_DUMP_BF16 = 30
};

/* dv_dump_create() flags */
#define DV_DUMP_FLOAT64 1u  /* store float64 (default float32) */
#define DV_DUMP_COMPRESS 2u /* byte shuffle + deflate, in token-row chunks */

typedef struct dv_dump dv_dump;

/* DV_DUMP_API_VERSION of the library (compare with the header's). */
int dv_dump_api_version(void);

/* Start a dump that will become `path`. backend names the engine
 * ("cpu", "vulkan", "llama.cpp-cuda"). A symbolic link at path is
 * followed (its target is replaced on commit, the link stays); a file
 * replaced keeps its permissions. DV_E_USAGE for a bad argument and for
 * a path that is a directory, a device, a FIFO, a socket or a dangling
 * link (a dump is seekable HDF5: it needs a regular file), DV_E_IO when
 * the directory is not writable. */
dv_status dv_dump_create(const char *path, const char *backend, unsigned flags,
                         dv_dump **out);

/* Root attributes, before the first pass. DV_E_USAGE for a reserved key,
 * a key of the wrong type, or a bad value (negative sizes, rope_type). */
dv_status dv_dump_set_str(dv_dump *d, const char *key, const char *value);
dv_status dv_dump_set_int(dv_dump *d, const char *key, int64_t value);
dv_status dv_dump_set_real(dv_dump *d, const char *key, double value);

/* Open pass number `index` (-1: one more than the last pass written;
 * passes left out of a dump keep their numbers). Its queries sit at
 * positions pos0 .. pos0 + n_tokens - 1; tokens[n_tokens] are the ids.
 * Ends an open pass first. */
dv_status dv_dump_begin_pass(dv_dump *d, int64_t index, int64_t pos0,
                             int64_t n_tokens, const int32_t *tokens);

/* One tensor of the open pass: shape[n_dims] row-major (outermost first;
 * the reverse of ggml's ne), data contiguous, `type` converted to the
 * stored float type. layer is -1 outside layers. op may be NULL for the
 * names of design.md's table (the table's op is used). order is the
 * tensor's execution index in the pass; -1 means one more than the last
 * tensor written. Tensors of the table must have the table's layer, op
 * and shape for this pass (e.g. blk.L.kq is [n_head, n_tokens,
 * pos0 + n_tokens]); DV_E_USAGE otherwise, so a dump that is written is
 * one the reader accepts. */
dv_status dv_dump_write(dv_dump *d, const char *name, int layer, const char *op,
                        int64_t order, int n_dims, const int64_t *shape,
                        enum dv_dump_type type, const void *data);

/* Close the open pass (a no-op when none is open). */
dv_status dv_dump_end_pass(dv_dump *d);

/* commit != 0: finish the file, flush it to disk and rename it onto the
 * destination; the status says whether that worked. commit == 0 (or any
 * earlier failure): remove the temporary file. Frees d in every case;
 * d may be NULL. */
dv_status dv_dump_close(dv_dump *d, int commit);

#ifdef __cplusplus
}
#endif
#endif /* DIVERGE_H */
