/*
 * bench_model.h - the benchmarks' models: a path DIR/NAME.gguf whose file
 * is missing is written first as fixture NAME (diverge fixture NAME), so
 * a normal build generates nothing (tinyllama-shape is 1.2 GB) and a
 * benchmark run makes its model once.
 */
#ifndef DV_BENCH_MODEL_H
#define DV_BENCH_MODEL_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "model.h"

static inline dv_status bench_open_model(const char *path, struct dv_model **m)
{
    if (access(path, F_OK) != 0) {
        const char *slash = strrchr(path, '/');
        char name[128];
        snprintf(name, sizeof name, "%.127s", slash ? slash + 1 : path);
        char *dot = strstr(name, ".gguf");
        if (dot) *dot = '\0';
        fprintf(stderr, "bench: writing fixture %s to %s\n", name, path);
        dv_status s = dv_fixture_write(name, path);
        if (s) return s;
    }
    return dv_model_open(path, m);
}

#endif
