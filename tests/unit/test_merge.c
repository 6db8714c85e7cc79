/* test_merge.c - src/merge: names, the parameter resolver, and every method against the
 * NumPy reference (tests/ref/merge/gen_fixture.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "harness.h"
#include "merge.h"

TEST(test_merge_names) {
    MergeMethod m;
    CHECK_OK(merge_method_from_name("ties", &m));
    CHECK(m == MERGE_TIES);
    CHECK_OK(merge_method_from_name("multislerp", &m));
    CHECK(m == MERGE_MULTISLERP);
    CHECK_EQ_INT(merge_method_from_name("tie", &m), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "did you mean 'ties'") != NULL);
    CHECK_EQ_INT(merge_method_from_name("dare-ties", &m), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'dare_ties'") != NULL);
    CHECK_EQ_INT(merge_method_from_name("zzzzzzzzzzzz", &m), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "known: linear") != NULL);
    for (int i = 0; i < MERGE_METHOD_COUNT; i++) {
        CHECK_OK(merge_method_from_name(merge_method_name((MergeMethod)i), &m));
        CHECK(m == (MergeMethod)i);
    }
    MergeParam p;
    CHECK_OK(merge_param_from_name("density", &p));
    CHECK(p == MERGE_P_DENSITY);
    CHECK_EQ_INT(merge_param_from_name("densty", &p), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'density'") != NULL);
    MergeSpec s;
    merge_spec_init(&s, MERGE_TIES);
    CHECK_EQ_INT(merge_spec_set_option(&s, "normalise", 1), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'normalize'") != NULL);
    CHECK_OK(merge_spec_set_option(&s, "rescale", 1));
    CHECK_EQ_INT(s.rescale, 1);
    merge_spec_free(&s);
    unsigned c;
    CHECK_OK(merge_class_from_name("attention", &c));
    CHECK(c == MERGE_CLS_ATTENTION);
    CHECK_EQ_INT(merge_class_from_name("atention", &c), AM_EINVAL);
}

TEST(test_merge_classes) {
    CHECK(merge_tensor_class("embeddings.word_embeddings.weight") == MERGE_CLS_EMBEDDINGS);
    CHECK(merge_tensor_class("embeddings.LayerNorm.weight") == MERGE_CLS_LAYERNORM);
    CHECK(merge_tensor_class("encoder.layer.3.attention.self.query.weight") == MERGE_CLS_ATTENTION);
    CHECK(merge_tensor_class("encoder.layer.3.attention.output.dense.bias") == MERGE_CLS_ATTENTION);
    CHECK(merge_tensor_class("encoder.layer.3.attention.output.LayerNorm.bias") == MERGE_CLS_LAYERNORM);
    CHECK(merge_tensor_class("encoder.layer.3.intermediate.dense.weight") == MERGE_CLS_FFN);
    CHECK(merge_tensor_class("encoder.layer.3.output.dense.weight") == MERGE_CLS_FFN);
    CHECK(merge_tensor_class("pooler.dense.weight") == MERGE_CLS_POOLER);
    CHECK(merge_tensor_class("cls.predictions.bias") == MERGE_CLS_HEAD);
    CHECK_EQ_INT(merge_tensor_layer("encoder.layer.11.output.dense.weight"), 11);
    CHECK_EQ_INT(merge_tensor_layer("embeddings.word_embeddings.weight"), -1);
}

TEST(test_merge_resolver) {
    MergeSpec s;
    merge_spec_init(&s, MERGE_TIES);
    const char *q = "encoder.layer.2.attention.self.query.weight";
    const char *f = "encoder.layer.2.intermediate.dense.weight";
    const char *e = "embeddings.word_embeddings.weight";
    CHECK_NEAR(merge_param_at(&s, MERGE_P_DENSITY, 0, q, 2, 5), 1.0, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_EPSILON, 0, q, 2, 5), 0.15, 1e-7);
    CHECK(isnan(merge_param_at(&s, MERGE_P_T, -1, q, 2, 5)));
    float half = 0.5f, grad[3] = {0.0f, 1.0f, 0.5f}, w2 = 2.0f, att = 0.25f, one = 0.9f;
    CHECK_OK(merge_spec_set(&s, MERGE_P_DENSITY, -1, 0, "", &half, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_DENSITY, 1, q, 2, 5), 0.5, 0);
    /* gradient over 5 layers: layer 1 -> x = 0.5 -> 0.5; layer 2 -> x = 1 -> 1; layer 3 -> 0.75 */
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, -1, 0, "", grad, 3));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 1, 5), 0.5, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 2, 5), 1.0, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 3, 5), 0.75, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, e, -1, 5), 0.0, 0); /* outside layers: x = 0 */
    /* per model overrides the global rule added before it */
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, 1, 0, "", &w2, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, q, 2, 5), 2.0, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 2, 5), 1.0, 1e-7);
    /* per class, then per tensor (substring and glob) */
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, -1, MERGE_CLS_ATTENTION, "", &att, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, q, 2, 5), 0.25, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, f, 2, 5), 2.0, 0);
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, 0, 0, "encoder.layer.*.intermediate.*", &one, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, f, 2, 5), 0.9, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, f, 2, 5), 2.0, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 2, 5), 0.25, 0);
    float bad = NAN;
    CHECK_EQ_INT(merge_spec_set(&s, MERGE_P_WEIGHT, 0, 0, "", &bad, 1), AM_EINVAL);
    CHECK_EQ_INT(merge_spec_set(&s, MERGE_P_WEIGHT, 0, 0, "", grad, 0), AM_EINVAL);
    merge_spec_free(&s);
}

int main(void) {
    RUN(test_merge_names);
    RUN(test_merge_classes);
    RUN(test_merge_resolver);
    return test_report();
}
