/*
 * jsonout.h - the JSON forms (jansson) of the values several reports
 * write. JSON has no infinities or NaN: they are the strings "inf",
 * "-inf" and "nan".
 */
#ifndef DV_JSONOUT_H
#define DV_JSONOUT_H

#include <jansson.h>
#include <stdint.h>

#include "compare.h"

json_t *dv_jnum(double v);
json_t *dv_jint(int64_t v);
json_t *dv_jshape(int n, const int64_t *shape);
/* null for no position */
json_t *dv_jwhere(const struct dv_cmp_where *w);
json_t *dv_jmetrics(const struct dv_metrics *m);
/* null when the row has no non-finite mismatch, else {"mismatches": N,
 * "test": a, "ref": b} with the pair at its first one (bad_at) */
json_t *dv_jnonfinite(const struct dv_cmp_row *w);
/* null unless the row is broken, else {"side": "ref"|"oracle"|"disagree",
 * "count": N, "at": position, "value": v} */
json_t *dv_jbroken(const struct dv_cmp_row *w);
json_t *dv_jtolerance(const struct dv_tolerance *t);

#endif
