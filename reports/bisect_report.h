/*
 * bisect_report.h - render a bisection (compare/bisect.h) as text for a
 * terminal or as JSON (schema "diverge-bisect", version 1, in diverge(1)).
 */
#ifndef DV_BISECT_REPORT_H
#define DV_BISECT_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "bisect.h"

/* What the run was, for the header: the model and the token schedule. */
struct dv_bisect_header {
    const char *model_path;
    const struct dv_model *m;
    const struct dv_bisect_opts *o;
};

/* Text: header, the pass table, the first divergence, the op replay
 * table, the layer split, the verdict and the times. Returns 0, or -1
 * when writing failed. */
int dv_bisect_report_text(FILE *f, const struct dv_bisect_header *h,
                          const struct dv_bisect_result *r, bool color);
int dv_bisect_report_json(FILE *f, const struct dv_bisect_header *h,
                          const struct dv_bisect_result *r);

#endif
