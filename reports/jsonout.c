/* jsonout.c - numbers, positions, metrics and tolerances as JSON values
 * (jansson), shared by the compare and bisect reports. */
#include "jsonout.h"

#include <math.h>

/* A double as a JSON number, or "inf" / "-inf" / "nan". */
json_t *dv_jnum(double v)
{
    if (isnan(v)) return json_string("nan");
    if (isinf(v)) return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

json_t *dv_jint(int64_t v)
{
    return json_integer((json_int_t)v);
}

json_t *dv_jshape(int n, const int64_t *shape)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, dv_jint(shape[i]));
    return a;
}

json_t *dv_jwhere(const struct dv_cmp_where *w)
{
    if (w->flat < 0) return json_null();
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "flat", dv_jint(w->flat), "index",
                     dv_jshape(w->n_dims, w->index), "token", dv_jint(w->token), "pos", dv_jint(w->pos),
                     "head", dv_jint(w->head), "col", dv_jint(w->col), "key", dv_jint(w->key));
}

json_t *dv_jmetrics(const struct dv_metrics *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "n", dv_jint(m->n));
    json_object_set_new(o, "n_used", dv_jint(m->n_used));
    json_object_set_new(o, "rmse", dv_jnum(dv_metrics_rmse(m)));
    json_object_set_new(o, "nmse", dv_jnum(dv_metrics_nmse(m)));
    json_object_set_new(o, "cos", dv_jnum(dv_metrics_cos(m)));
    json_object_set_new(o, "sqnr_db", dv_jnum(dv_metrics_sqnr_db(m)));
    json_object_set_new(o, "max_abs", dv_jnum(m->max_abs));
    json_object_set_new(o, "max_abs_flat", dv_jint(m->max_abs_at));
    json_object_set_new(o, "max_rel", dv_jnum(m->max_rel));
    json_object_set_new(o, "max_rel_flat", dv_jint(m->max_rel_at));
    json_object_set_new(o, "ulp_max", json_integer((json_int_t)m->ulp_max));
    json_object_set_new(o, "ulp_max_flat", dv_jint(m->ulp_max_at));
    json_object_set_new(o, "violations", dv_jint(m->viol));
    json_object_set_new(o, "violations_first", dv_jint(m->viol_first));
    json_object_set_new(o, "nan_test", dv_jint(m->nan_test));
    json_object_set_new(o, "nan_ref", dv_jint(m->nan_ref));
    json_object_set_new(o, "inf_test", dv_jint(m->inf_test));
    json_object_set_new(o, "inf_ref", dv_jint(m->inf_ref));
    json_object_set_new(o, "nan_test_first", dv_jint(m->nan_test_first));
    json_object_set_new(o, "nan_ref_first", dv_jint(m->nan_ref_first));
    json_object_set_new(o, "inf_test_first", dv_jint(m->inf_test_first));
    json_object_set_new(o, "inf_ref_first", dv_jint(m->inf_ref_first));
    json_object_set_new(o, "bad_test", dv_jint(m->bad_test));
    json_object_set_new(o, "bad_test_first", dv_jint(m->bad_test_first));
    json_object_set_new(o, "bad_ref", dv_jint(m->bad_ref));
    json_object_set_new(o, "bad_ref_first", dv_jint(m->bad_ref_first));
    json_object_set_new(o, "nonfinite_mismatch", dv_jint(m->mismatch));
    json_object_set_new(o, "nonfinite_mismatch_first", dv_jint(m->mismatch_first));
    json_object_set_new(o, "posinf_ref", dv_jint(m->posinf_ref));
    json_object_set_new(o, "posinf_ref_first", dv_jint(m->posinf_ref_first));
    json_object_set_new(o, "neginf_ref", dv_jint(m->neginf_ref));
    json_object_set_new(o, "neginf_ref_first", dv_jint(m->neginf_ref_first));
    return o;
}

json_t *dv_jnonfinite(const struct dv_cmp_row *w)
{
    if (!w->m.mismatch) return json_null();
    return json_pack("{s:o, s:o, s:o}", "mismatches", dv_jint(w->m.mismatch), "test",
                     dv_jnum(w->m.mismatch_test), "ref", dv_jnum(w->m.mismatch_ref));
}

json_t *dv_jbroken(const struct dv_cmp_row *w)
{
    if (w->status != DV_ROW_BROKEN) return json_null();
    return json_pack("{s:s, s:o, s:o, s:o}", "side", dv_broken_side_name(w->broken), "count",
                     dv_jint(w->n_broken), "at", dv_jwhere(&w->broken_at), "value",
                     dv_jnum(w->broken_value));
}

json_t *dv_jtolerance(const struct dv_tolerance *t)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
                     "nmse", dv_jnum(t->nmse), "max_abs", dv_jnum(t->max_abs), "max_rel",
                     dv_jnum(t->max_rel), "ulp", dv_jnum(t->ulp), "violations", dv_jnum(t->violations),
                     "cos", dv_jnum(t->cos), "atol", dv_jnum(t->metric.atol), "rtol",
                     dv_jnum(t->metric.rtol), "rel_eps", dv_jnum(t->metric.rel_eps), "oracle_m",
                     dv_jnum(t->oracle_m), "oracle_floor", dv_jnum(t->oracle_floor), "ignore",
                     t->ignore);
}

