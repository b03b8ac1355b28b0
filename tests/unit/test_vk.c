/*
 * test_vk.c - the Vulkan runtime on whatever device the loader offers (in
 * CI lavapipe, a CPU device): device choice, buffers, a kernel with push
 * constants, the validation layer. A machine without a device fails here
 * with vulkan's one-line reason, it is not skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "shaders.h"
#include "vk.h"

static struct dv_vk *open_or_fail(bool validation)
{
    struct dv_vk *vk = NULL;
    dv_status s = dv_vk_open(NULL, validation, &vk);
    if (s) fail_msg("no Vulkan device for the kernel tests: %s", dv_errmsg());
    return vk;
}

/* c = a + b over n floats (not a multiple of the workgroup), exact. */
static void run_add(struct dv_vk *vk, uint32_t n)
{
    struct dv_vk_buf a, b, c;
    assert_int_equal(dv_vk_buf_alloc(vk, n * 4, true, &a), DV_OK);
    assert_int_equal(dv_vk_buf_alloc(vk, n * 4, true, &b), DV_OK);
    assert_int_equal(dv_vk_buf_alloc(vk, n * 4, true, &c), DV_OK);
    float *pa = a.map, *pb = b.map, *pc = c.map;
    for (uint32_t i = 0; i < n; i++) {
        pa[i] = (float)i * 0.5f;
        pb[i] = 1.0f / (float)(i + 1);
        pc[i] = -1.0f;
    }
    struct dv_vk_kernel k;
    assert_int_equal(dv_vk_kernel_new(vk, dv_spv_add.code, dv_spv_add.bytes, 3, 16, NULL, 0, &k),
                     DV_OK);
    const struct dv_vk_buf *bufs[] = {&a, &b, &c};
    const uint32_t push[4] = {n, 0, 0, 0}; /* DV_PUSH_BINARY: n, offsets */
    const uint32_t groups[3] = {(n + 255) / 256, 1, 1};
    assert_int_equal(dv_vk_begin(vk), DV_OK);
    assert_int_equal(dv_vk_dispatch(vk, &k, bufs, push, groups), DV_OK);
    assert_int_equal(dv_vk_submit(vk), DV_OK);
    for (uint32_t i = 0; i < n; i++) assert_true(pc[i] == pa[i] + pb[i]);
    dv_vk_kernel_free(vk, &k);
    dv_vk_buf_free(vk, &a), dv_vk_buf_free(vk, &b), dv_vk_buf_free(vk, &c);
}

static void test_add(void **state)
{
    (void)state;
    struct dv_vk *vk = open_or_fail(false);
    printf("device: %s (%s)\n", dv_vk_device_name(vk), dv_vk_driver_name(vk));
    assert_true(dv_vk_device_name(vk)[0] != '\0');
    run_add(vk, 1000);
    run_add(vk, 1);
    dv_vk_close(vk);
}

/* The same under VK_LAYER_KHRONOS_validation: no message at all. */
static void test_validation_clean(void **state)
{
    (void)state;
    struct dv_vk *vk = open_or_fail(true);
    run_add(vk, 777);
    assert_int_equal(dv_vk_validation_errors(vk), 0);
    dv_vk_close(vk);
}

/* Choosing a device by a name no device has, or an index past the list,
 * fails naming what was asked for; misuse of recording is a usage error. */
static void test_choice_and_misuse(void **state)
{
    (void)state;
    struct dv_vk *vk = (struct dv_vk *)&vk;
    assert_int_equal(dv_vk_open("no-such-gpu-name", false, &vk), DV_E_DEVICE);
    assert_null(vk);
    assert_non_null(strstr(dv_errmsg(), "no-such-gpu-name"));
    assert_int_equal(dv_vk_open("99", false, &vk), DV_E_DEVICE);
    assert_int_equal(dv_vk_open("0", false, &vk), DV_OK);
    assert_int_equal(dv_vk_submit(vk), DV_OK); /* nothing recorded: nothing to do */
    assert_int_equal(dv_vk_begin(vk), DV_OK);
    assert_int_equal(dv_vk_begin(vk), DV_E_USAGE);
    assert_int_equal(dv_vk_submit(vk), DV_OK); /* an empty recording is fine */
    struct dv_vk_kernel k;
    assert_int_equal(dv_vk_kernel_new(vk, dv_spv_add.code, dv_spv_add.bytes, 3, 6, NULL, 0, &k),
                     DV_E_USAGE); /* push size not a multiple of 4 */
    dv_vk_close(vk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_validation_clean),
        cmocka_unit_test(test_choice_and_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
