/*
 * fault.h - design.md's fault zoo: named bugs the Vulkan kernels can be
 * built with (specialization constant DV_SPEC_FAULT), to test that
 * diverge finds them. Off by default; a clean run's kernels are built with
 * fault 0 and pay nothing.
 */
#ifndef DV_FAULT_H
#define DV_FAULT_H

#include <stddef.h>

#include "diverge.h"
#include "shaders/shared.h"

/* A fault and the layer it is limited to (-1: every layer and the ops
 * outside layers). fault 0 (DV_FAULT_NONE): no fault. */
struct dv_inject {
    int fault;
    int layer;
};

/* "mask-no-past", ...; "?" out of range ("none" for 0). */
const char *dv_fault_name(int fault);
/* One line on what fault does, for --help and the manual. */
const char *dv_fault_doc(int fault);

/* Parse "NAME" or "NAME@LAYER" (LAYER a decimal < n_layer). DV_E_USAGE
 * with a message listing the faults for anything else. */
dv_status dv_inject_parse(const char *s, int n_layer, struct dv_inject *out);

/* "NAME" or "NAME@LAYER" into buf (the dump's `inject` attribute); "" for
 * no fault. */
void dv_inject_format(const struct dv_inject *in, char *buf, size_t cap);

#endif
