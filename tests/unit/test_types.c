/* test_types.c - the name tables of types, ops and tensors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "ops.h"
#include "types.h"

static void test_type_names(void **state)
{
    assert_string_equal(dv_type_name(DV_TYPE_Q4_K), "q4_k");
    assert_int_equal(dv_type_from_name("Q8_0"), DV_TYPE_Q8_0);
    assert_int_equal(dv_type_from_name("q9_9"), -1);
    assert_null(dv_type_traits(4)); /* a gap in ggml's numbering */
    assert_null(dv_type_traits(-1));
    assert_null(dv_type_traits(DV_TYPE_COUNT));
    assert_string_equal(dv_type_name(1000), "?");
    for (int t = 0; t < DV_TYPE_COUNT; t++) {
        const struct dv_type_traits *tr = dv_type_traits(t);
        if (tr) assert_int_equal(dv_type_from_name(tr->name), t);
    }
}

static void test_op_tables(void **state)
{
    for (int op = 0; op < DV_OP_COUNT; op++) {
        assert_string_not_equal(dv_op_name(op), "?");
        assert_int_equal(dv_op_from_name(dv_op_name(op)), op);
    }
    assert_string_equal(dv_op_name(DV_OP_COUNT), "?");
    assert_string_equal(dv_layer_tensor_name(DV_LT_Q_ROPE), "q_rope");
    assert_int_equal(dv_layer_tensor_op(DV_LT_ATTN_IN, 0), DV_OP_GET_ROWS);
    assert_int_equal(dv_layer_tensor_op(DV_LT_ATTN_IN, 3), DV_OP_VIEW);
    assert_int_equal(dv_layer_tensor_op(DV_LT_KQ_SOFTMAX, 1), DV_OP_SOFTMAX);
    assert_string_equal(dv_global_tensor_name(DV_GT_LOGITS), "logits");
    assert_int_equal(dv_tensors_per_pass(22), 22 * 18 + 2);
    /* design.md's table order */
    assert_int_equal(DV_LT_ATTN_IN, 0);
    assert_int_equal(DV_LT_OUT, DV_LT_COUNT - 1);
    assert_true(DV_LT_KQ < DV_LT_KQ_SOFTMAX && DV_LT_KQ_SOFTMAX < DV_LT_ATTN_OUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_op_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
