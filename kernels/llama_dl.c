/* llama_dl.c - loading llama.cpp at run time (llama_dl.h). */
#include "llama_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "llama_map.h"
#include "vk.h"

/* ---- the log: keep the last error line, print nothing --------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_line[512], log_last[512]; /* the line being built; the last one */
static size_t log_len;
static int log_level; /* of the message the CONT pieces continue */

static void log_flush(void)
{
    if (log_len) memcpy(log_last, log_line, log_len + 1);
    log_len = 0;
    log_line[0] = '\0';
}

/* ggml_log_callback: called for pieces of lines, from any thread. */
static void on_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    pthread_mutex_lock(&log_mu);
    if (level != GGML_LOG_LEVEL_CONT) {
        if (log_level == GGML_LOG_LEVEL_ERROR) log_flush();
        log_level = level;
    }
    for (const char *p = text; log_level == GGML_LOG_LEVEL_ERROR && p && *p; p++) {
        if (*p == '\n') {
            log_flush();
        } else if (log_len + 1 < sizeof log_line) {
            /* one line: control bytes become spaces */
            log_line[log_len++] = (unsigned char)*p < 32 ? ' ' : *p;
            log_line[log_len] = '\0';
        }
    }
    pthread_mutex_unlock(&log_mu);
}

void dv_llama_log_last(char *buf, size_t cap)
{
    pthread_mutex_lock(&log_mu);
    snprintf(buf, cap, "%s", log_len ? log_line : log_last);
    pthread_mutex_unlock(&log_mu);
}

void dv_llama_log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    log_line[0] = log_last[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* ---- loading ------------------------------------------------------------------ */

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dv_llama_api api;
static bool loaded;

/* ggml's Vulkan backend lists only discrete and integrated GPUs unless
 * GGML_VK_VISIBLE_DEVICES names device indices (ggml-vulkan.cpp,
 * ggml_vk_instance_init: it reads the variable as numbers separated by
 * commas, and an index at or past the loader's device count throws, which
 * loses the whole backend). Unset, it is set to every index the loader has,
 * 0..n-1, so that lavapipe (a CPU-type device) is there too; the types are
 * kept to choose a default device that is a real GPU. */
static dv_status vk_visible(struct dv_llama_api *a)
{
    static bool ours; /* set by an earlier, failed load: keep what it found */
    static int n_ours, types_ours[DV_LLAMA_MAX_VK];
    if (ours) {
        a->vk_env_ours = true, a->n_vk = n_ours;
        memcpy(a->vk_types, types_ours, sizeof types_ours);
        return DV_OK;
    }
    if (getenv("GGML_VK_VISIBLE_DEVICES")) return DV_OK;
    VkPhysicalDeviceType types[DV_LLAMA_MAX_VK];
    int n = 0;
    dv_status s = dv_vk_device_types(types, DV_LLAMA_MAX_VK, &n);
    if (s || n == 0) return DV_OK; /* no Vulkan: ggml finds none either */
    char list[1024];
    size_t o = 0;
    for (int i = 0; i < n && o + 12 < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, i ? ",%d" : "%d", i);
    if (setenv("GGML_VK_VISIBLE_DEVICES", list, 0))
        return dv_fail(DV_E_NOMEM, "cannot set GGML_VK_VISIBLE_DEVICES");
    a->vk_env_ours = ours = true;
    a->n_vk = n_ours = n < DV_LLAMA_MAX_VK ? n : DV_LLAMA_MAX_VK;
    for (int i = 0; i < a->n_vk; i++) a->vk_types[i] = types_ours[i] = (int)types[i];
    return DV_OK;
}

/* dlopen dir/name; an optional one that is not there is skipped. */
static dv_status open_lib(const char *dir, const char *name, bool required, void **h)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *h = NULL;
    if (access(path, F_OK) != 0) {
        if (!required) return DV_OK;
        return dv_fail(DV_E_DEVICE, "no %s in %s (set DIVERGE_LLAMA_CPP_LIBDIR to a llama.cpp "
                       "lib directory, or run scripts/fetch-llama-cpp and rebuild)", name, dir);
    }
    if ((*h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) return DV_OK;
    const char *why = dlerror();
    return dv_fail(DV_E_DEVICE, "cannot load %s: %s", path, why ? why : "dlopen failed");
}

/* Every function of DV_LLAMA_FUNCS from libllama's handle: dlsym on it also
 * searches the libraries it needs (libggml, libggml-base). */
static dv_status resolve(void *h, const char *dir, struct dv_llama_api *a)
{
    void *p;
#define DV_X(f)                                                                \
    if ((p = dlsym(h, #f))) memcpy(&a->f, &p, sizeof p);                       \
    if (!p)                                                                    \
        return dv_fail(DV_E_DEVICE, "%s/libllama.so has no function %s (not a llama.cpp " \
                       "release this diverge knows)", dir, #f);
    DV_LLAMA_FUNCS(DV_X)
#undef DV_X
    return DV_OK;
}

/* The nodes are matched by ggml op number (llama_map.h): the library's op
 * table must give each the name our headers give it. */
static dv_status check_ops(const struct dv_llama_api *a, const char *dir)
{
    int n;
    const struct dv_lmap_row *r = dv_lmap_rows(&n);
    for (int i = 0; i < n; i++) {
        const char *got = a->ggml_op_name((enum ggml_op)r[i].ggml_op);
        if (!got || strcmp(got, r[i].op_name))
            return dv_fail(DV_E_DEVICE, "%s: ggml op %d is '%.32s' there, '%s' in the headers "
                           "this diverge was built with (rebuild it against that llama.cpp)",
                           dir, r[i].ggml_op, got ? got : "(null)", r[i].op_name);
    }
    return DV_OK;
}

/* scripts/fetch-llama-cpp's stamp beside lib/, naming the npm release. */
static void read_release(const char *dir, char *out, size_t cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/../STAMP", dir);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(out, (int)cap, f)) out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p > 126) *p = '?';
}

static dv_status load(struct dv_llama_api *a)
{
    const char *env = getenv("DIVERGE_LLAMA_CPP_LIBDIR");
    const char *dir = env && *env ? env : DV_LLAMA_CPP_LIBDIR;
    if (strlen(dir) >= sizeof a->libdir)
        return dv_fail(DV_E_DEVICE, "llama.cpp lib directory name too long");
    memset(a, 0, sizeof *a);
    snprintf(a->libdir, sizeof a->libdir, "%s", dir);
    dv_status s = vk_visible(a);
    /* libggml-base and libggml first where they exist, so a build whose
     * libllama has no RUNPATH finds them loaded already */
    void *base = NULL, *ggml = NULL, *llama = NULL;
    if (!s) s = open_lib(dir, "libggml-base.so", false, &base);
    if (!s) s = open_lib(dir, "libggml.so", false, &ggml);
    if (!s) s = open_lib(dir, "libllama.so", true, &llama);
    if (!s) s = resolve(llama, dir, a);
    if (!s) s = check_ops(a, dir);
    if (s) {
        void *h[] = {llama, ggml, base};
        for (size_t i = 0; i < 3; i++)
            if (h[i]) dlclose(h[i]);
        return s;
    }
    a->llama_log_set(on_log, NULL);
    a->ggml_log_set(on_log, NULL);
    a->llama_backend_init();
    a->ggml_backend_load_all_from_path(dir);
    /* ggml's Vulkan backend made an instance: pin the drivers it loaded, as
     * dv_vk_open does (vk_resident.c) */
    dv_vk_keep_drivers_resident();
    read_release(dir, a->release, sizeof a->release);
    return DV_OK;
}

dv_status dv_llama_load(const struct dv_llama_api **out)
{
    pthread_mutex_lock(&load_mu);
    dv_status s = loaded ? DV_OK : load(&api);
    loaded = s == DV_OK;
    pthread_mutex_unlock(&load_mu);
    *out = s ? NULL : &api;
    return s;
}
