/* reader_arith.c - the declared arithmetic of a dump (reader.h). */
#include <stdio.h>
#include <string.h>

#include "reader.h"

void dv_reader_arith(const struct dv_reader *r, struct dv_reader_arith *out)
{
    memset(out, 0, sizeof *out);
    const struct dv_reader_attr *aq = dv_reader_attr(r, "act_quant");
    const struct dv_reader_attr *kv = dv_reader_attr(r, "kv_type");
    out->declared = aq && aq->kind == DV_ATTR_STR && kv && kv->kind == DV_ATTR_STR;
    snprintf(out->act_quant, sizeof out->act_quant, "%s", dv_reader_str(r, "act_quant"));
    snprintf(out->act_quant_types, sizeof out->act_quant_types, "%s",
             dv_reader_str(r, "act_quant_types"));
    snprintf(out->kv_type, sizeof out->kv_type, "%s", dv_reader_str(r, "kv_type"));
    snprintf(out->attn_quant, sizeof out->attn_quant, "%s", dv_reader_str(r, "attn_quant"));
}
