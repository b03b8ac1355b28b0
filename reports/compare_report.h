/*
 * compare_report.h - render a comparison (compare/compare.h) as text for
 * a terminal or as JSON for programs.
 */
#ifndef DV_COMPARE_REPORT_H
#define DV_COMPARE_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "compare.h"

/* The one-line verdict ("agree: ...", "DIVERGED at ...", "incomparable:
 * ...", or for a broken reference "REF.h5: pass 0 ...: the reference
 * holds ..."), without a newline, into buf. */
void dv_cmp_verdict_line(const struct dv_cmp_result *c, char *buf, int size);

/* Text: header (both dumps' backend, device, model, fault; policy and
 * oracle), pass alignment problems, the per-layer table, the residual
 * growth table, the first divergence and the verdict line. all: also
 * every tensor row. color: ANSI colours (the caller decides, see
 * dv_term_color). Returns 0, or -1 when writing failed. */
int dv_cmp_report_text(FILE *f, const struct dv_cmp_result *c, bool all, bool color);

/* JSON (schema "diverge-compare", version 1, documented in diverge(1)):
 * everything the result holds, every tensor row included. Non-finite
 * numbers are written as the strings "inf", "-inf" and "nan" (JSON has
 * no such numbers). Returns 0, or -1 when writing failed. */
int dv_cmp_report_json(FILE *f, const struct dv_cmp_result *c);

#endif
