/* h5util.c - HDF5 error silencing and reasons, string types. */
#include "h5util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void init_once(void) { H5dont_atexit(); }

void dv_h5_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);
}

struct walk {
    char inner[160]; /* the first entry: where the error was detected */
    char sys[96];    /* "error message = '...'" of a failed system call */
};

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    struct walk *w = data;
    const char *d = e->desc ? e->desc : "";
    if (n == 0) snprintf(w->inner, sizeof w->inner, "%s", d);
    const char *m = strstr(d, "error message = '");
    if (m && !w->sys[0]) {
        m += strlen("error message = '");
        size_t len = strcspn(m, "'");
        if (len >= sizeof w->sys) len = sizeof w->sys - 1;
        memcpy(w->sys, m, len);
        w->sys[len] = '\0';
    }
    return 0;
}

/* The reason of stack `st`, as dv_h5_reason describes it. */
static void reason_of(hid_t st, char *buf, size_t cap)
{
    struct walk w = {{0}, {0}};
    H5Ewalk2(st, H5E_WALK_UPWARD, walk_cb, &w);
    const char *r = w.sys[0] ? w.sys : w.inner[0] ? w.inner : "";
    snprintf(buf, cap, "%s", r);
    /* the innermost description may run on with "time = ..., filename" */
    char *cut = strstr(buf, ", time =");
    if (cut) *cut = '\0';
}

/* The first failure's reason since dv_h5_quiet: HDF5 calls the "auto"
 * function as a failing API call returns, before the next call clears
 * the stack, so clean-up calls after a failure cannot hide its cause. */
static _Thread_local char captured[200];

static herr_t capture(hid_t st, void *data)
{
    (void)data;
    if (!captured[0]) reason_of(st, captured, sizeof captured);
    return 0;
}

void dv_h5_quiet(struct dv_h5_quiet *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, capture, NULL);
    captured[0] = '\0';
}

void dv_h5_loud(const struct dv_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

const char *dv_h5_reason(char *buf, size_t cap)
{
    if (captured[0]) snprintf(buf, cap, "%s", captured);
    else reason_of(H5E_DEFAULT, buf, cap);
    if (!buf[0]) snprintf(buf, cap, "HDF5 call failed");
    return buf;
}

hid_t dv_h5_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}
