/* test_partitioner.c - murmur2 against values Kafka's own implementation produces, and the
 * default partition choice built on it.
 *
 * Sources of the expected hashes (all outputs of org.apache.kafka.common.utils.Utils.murmur2
 * or of librdkafka's Java-compatible murmur2, quoted by client libraries that test against
 * them): Kafka's UtilsTest.testMurmur2 ("21" ... "abc"); the Kafka-generated table in
 * akka's Murmur2Spec and kafkajs's defaultJava murmur2.spec.js ("1" ... "12345", which
 * agree with each other); librdkafka's unittest_murmur2 ("kafka", "giberish123456789",
 * "1234", the empty key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "partitioner.h"
#include "shoal.h"

struct murmur2_case {
    const char *key;
    int32_t hash;
};

static const struct murmur2_case kafka_cases[] = {
    /* Kafka UtilsTest.testMurmur2 */
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
    /* generated with Kafka's Utils.murmur2 (akka Murmur2Spec, kafkajs defaultJava) */
    {"1", -1993445489},
    {"12", 126087238},
    {"123", -267702483},
    {"1234", -1614185708},
    {"12345", -1188365604},
    /* librdkafka unittest_murmur2 */
    {"kafka", (int32_t)0xd067cf64u},
    {"giberish123456789", (int32_t)0x8f552b0cu},
    {"", (int32_t)0x106e08d9u},
};

static void test_murmur2_matches_kafka(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(kafka_cases) / sizeof(kafka_cases[0]); i++) {
        const struct murmur2_case *c = &kafka_cases[i];
        int32_t got = shoal__murmur2(c->key, strlen(c->key));
        if (got != c->hash)
            fail_msg("murmur2(\"%s\") = %d, expected %d", c->key, got, c->hash);
    }
}

static void test_murmur2_does_not_depend_on_alignment(void **state)
{
    char buf[64];
    const char *key = "a-little-bit-longer-string";
    (void)state;

    for (size_t off = 0; off < 8; off++) {
        memcpy(buf + off, key, strlen(key));
        assert_int_equal(shoal__murmur2(buf + off, strlen(key)), -1486304829);
    }
    assert_int_equal(shoal__murmur2(NULL, 0), (int32_t)0x106e08d9u);
}

static void test_to_positive_clears_only_the_sign_bit(void **state)
{
    (void)state;
    assert_int_equal(shoal__to_positive(-1), 0x7fffffff);
    assert_int_equal(shoal__to_positive(INT32_MIN), 0);
    assert_int_equal(shoal__to_positive(5), 5);
}

static void test_partition_for_key_is_positive_hash_modulo_partitions(void **state)
{
    (void)state;
    /* toPositive(-973932308) = 1173551340; toPositive(479470107) = 479470107 */
    assert_int_equal(shoal_partition_for_key("21", 2, 10), 0);
    assert_int_equal(shoal_partition_for_key("21", 2, 7), 3);
    assert_int_equal(shoal_partition_for_key("abc", 3, 10), 7);
    assert_int_equal(shoal_partition_for_key("abc", 3, 7), 4);
    assert_int_equal(shoal_partition_for_key("abc", 3, 1), 0);
    for (size_t i = 0; i < sizeof(kafka_cases) / sizeof(kafka_cases[0]); i++) {
        const char *k = kafka_cases[i].key;
        for (uint32_t n = 1; n <= SHOAL_PARTITIONS_MAX; n += 97) {
            int32_t p = shoal_partition_for_key(k, strlen(k), n);
            assert_true(p >= 0 && (uint32_t)p < n);
            assert_int_equal(p, (uint32_t)shoal__to_positive(kafka_cases[i].hash) % n);
        }
    }
}

static void test_partition_for_key_rejects_zero_partitions(void **state)
{
    (void)state;
    assert_int_equal(shoal_partition_for_key("abc", 3, 0), -1);
    assert_int_equal(shoal_partition_for_key(NULL, 3, 4), -1);
    assert_int_equal(shoal_partition_for_key(NULL, 0, 4), 0x106e08d9 % 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_murmur2_matches_kafka),
        cmocka_unit_test(test_murmur2_does_not_depend_on_alignment),
        cmocka_unit_test(test_to_positive_clears_only_the_sign_bit),
        cmocka_unit_test(test_partition_for_key_is_positive_hash_modulo_partitions),
        cmocka_unit_test(test_partition_for_key_rejects_zero_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
