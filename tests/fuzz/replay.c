/*
 * replay.c - main() for a harness in a build without libFuzzer (gcc, the
 * default builds): every file under the directories (or files) given is
 * fed to LLVMFuzzerTestOneInput once, so the committed corpus and the
 * inputs that once crashed keep being checked by the ordinary test runs,
 * and under ASan/UBSan in build-asan. A missing directory is skipped (a
 * harness may have no regression inputs yet).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Weak: harnesses without an initializer leave it out. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int feed(const char *path, int *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return 1;
    }
    size_t size = (size_t)st.st_size;
    /* an exactly sized buffer, as libFuzzer gives: ASan sees overreads */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(buf);
        fclose(f);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    (*n)++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order (a stable replay). */
static int feed_dir(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    size_t k = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (k == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names)))
            return 1;
        if (!(names[k] = malloc(strlen(dir) + strlen(e->d_name) + 2))) return 1;
        sprintf(names[k++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, k, sizeof *names, by_name);
    int bad = 0;
    for (size_t i = 0; i < k; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) bad |= feed(names[i], n);
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int bad = 0, n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) bad |= feed_dir(argv[i], &n);
        else if (stat(argv[i], &st) == 0) bad |= feed(argv[i], &n);
    }
    printf("replay: %d inputs, no crash\n", n);
    return bad;
}
