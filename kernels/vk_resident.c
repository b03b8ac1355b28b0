/*
 * vk_resident.c - keep the Vulkan drivers and layers the loader opened
 * mapped until the process exits.
 *
 * The loader dlcloses every driver (ICD) and layer at vkDestroyInstance.
 * Drivers keep caches in their static data (lavapipe: a few hundred bytes
 * to 7 KiB allocated with realloc); once the library is unmapped, those
 * blocks are still allocated but nothing LeakSanitizer scans points at
 * them any more, so every process that ever opened a device ends with a
 * "detected memory leaks" report from "<unknown module>". Keeping the
 * libraries resident makes their statics reachable again, which is the
 * truth (the blocks are the driver's, freed or not at exit by its own
 * rules), while a block our code allocates and loses stays unreachable
 * and is reported as before. It also saves reloading the driver when a
 * process opens a second instance (bisect does). The cost is the mapping
 * of a library that is loaded anyway.
 */
#include "vk.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

/* The entry points only a driver or a layer exports. */
static const char *const vk_module_symbols[] = {
    "vk_icdGetInstanceProcAddr",              /* drivers, loader interface >= 1 */
    "vk_icdNegotiateLoaderICDInterfaceVersion",
    "vkNegotiateLoaderLayerInterfaceVersion", /* layers, interface >= 2 */
};

/* dl_iterate_phdr callback: pin one loaded object if it is a driver or
 * a layer. RTLD_NOLOAD never loads anything new; RTLD_NODELETE on an
 * object already loaded marks it never to be unloaded (glibc). The handle
 * from that second dlopen is kept on purpose: it is the reference that
 * stays. */
static int pin_one(struct dl_phdr_info *info, size_t size, void *count)
{
    (void)size;
    const char *path = info->dlpi_name;
    if (!path || !*path) return 0; /* the program itself */
    void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return 0;
    bool vk_module = false;
    for (size_t i = 0; i < sizeof vk_module_symbols / sizeof *vk_module_symbols; i++) {
        void *sym = dlsym(h, vk_module_symbols[i]);
        Dl_info where;
        /* dlsym also searches h's dependencies: count the symbol only
         * when this object defines it */
        if (sym && dladdr(sym, &where) && where.dli_fname &&
            strcmp(where.dli_fname, path) == 0)
            vk_module = true;
    }
    if (vk_module && dlopen(path, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE))
        ++*(int *)count;
    dlclose(h);
    return 0;
}

int dv_vk_keep_drivers_resident(void)
{
    int count = 0;
    dl_iterate_phdr(pin_one, &count);
    return count;
}
