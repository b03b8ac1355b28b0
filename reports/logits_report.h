/*
 * logits_report.h - render a top-k logit diff (compare/logits.h) as text
 * for a terminal or as JSON for programs.
 */
#ifndef DV_LOGITS_REPORT_H
#define DV_LOGITS_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "diverge.h"
#include "logits.h"
#include "vocab.h"

/* Text: a header (both dumps, the vocab, the passes compared and those
 * that were not), the per-position table (pass, position, input token,
 * rank, KL, max|p-q|, then the reference's and the test's top-k on two
 * lines), the summary block in llama.cpp's `perplexity --kl-divergence`
 * wording, and the flipped positions. vocab (borrowed, may be NULL) gives
 * token texts, quoted with control bytes and invalid UTF-8 escaped;
 * vocab_note is the model file used, or why there is no vocab. color:
 * flipped positions in red (the caller decides, see dv_term_color).
 * DV_E_IO when writing fails. */
dv_status dv_logits_report_text(FILE *f, const struct dv_logits_result *r,
                                const struct dv_vocab *vocab, const char *vocab_note,
                                bool color);

/* JSON (schema "diverge-logits", version 1, documented in diverge(1)):
 * everything the result holds: both dumps, every position with both top-k
 * lists, the summary, the flips and the passes not compared. Token texts
 * are JSON strings (invalid UTF-8 bytes as the text \xNN); non-finite
 * numbers are the strings "inf", "-inf" and "nan". DV_E_NOMEM, or DV_E_IO
 * when writing fails. */
dv_status dv_logits_report_json(FILE *f, const struct dv_logits_result *r,
                                const struct dv_vocab *vocab, const char *vocab_note);

#endif
