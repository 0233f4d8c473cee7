/* test_topic_config.c - topic settings by Kafka-style name: parsing, ranges, formatting,
 * combined checks, and which settings may change on an existing topic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "topic_config.h"

static void test_defaults_pass_the_check(void **state)
{
    shoal_topic_config_t cfg;
    (void)state;
    shoal_topic_config_init(&cfg);
    assert_int_equal(shoal_topic_config_check(&cfg), 0);
    assert_int_equal(cfg.retention_bytes, -1);
    assert_int_equal(cfg.cleanup_policy, SHOAL_CLEANUP_DELETE);
}

static void test_set_parses_numbers_sizes_and_words(void **state)
{
    shoal_topic_config_t cfg;
    (void)state;
    shoal_topic_config_init(&cfg);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.bytes", "10M"), 0);
    assert_int_equal(cfg.retention_bytes, 10 << 20);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "-1"), 0);
    assert_int_equal(cfg.retention_ms, -1);
    assert_int_equal(shoal_topic_config_set(&cfg, "storage", "memory"), 0);
    assert_int_equal(cfg.storage, SHOAL_STORAGE_MEMORY);
    assert_int_equal(shoal_topic_config_set(&cfg, "cleanup.policy", "delete,compact"), 0);
    assert_int_equal(cfg.cleanup_policy, SHOAL_CLEANUP_DELETE | SHOAL_CLEANUP_COMPACT);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "64K"), 0);
    assert_int_equal(cfg.segment_bytes, 65536);
    /* KB, KiB and the like are powers of 1024 too, in either case */
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "128KiB"), 0);
    assert_int_equal(cfg.segment_bytes, 128 << 10);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "1MB"), 0);
    assert_int_equal(cfg.segment_bytes, 1 << 20);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.bytes", "3gib"), 0);
    assert_int_equal(cfg.retention_bytes, 3LL << 30);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "1MiBs"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "1iB"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "1KiB"), SHOAL_ECONFIG);
    assert_non_null(strstr(shoal_errmsg(), "K, M and G are for sizes in bytes"));
}

/* shoal_errmsg() belongs to the latest call: a success after a failure clears it. */
static void test_a_success_clears_the_last_failures_detail(void **state)
{
    shoal_topic_config_t cfg;
    char buf[32];
    (void)state;
    shoal_topic_config_init(&cfg);
    assert_int_equal(shoal_topic_config_set(&cfg, "no.such", "1"), SHOAL_ESETTING);
    assert_string_not_equal(shoal_errmsg(), "");
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "5"), 0);
    assert_string_equal(shoal_errmsg(), "");
    assert_int_equal(shoal_topic_config_set(&cfg, "no.such", "1"), SHOAL_ESETTING);
    assert_int_equal(shoal_topic_config_get(&cfg, "retention.ms", buf, sizeof(buf)), 0);
    assert_string_equal(shoal_errmsg(), "");
    assert_int_equal(shoal_topic_config_set(&cfg, "no.such", "1"), SHOAL_ESETTING);
    assert_int_equal(shoal_topic_config_check(&cfg), 0);
    assert_string_equal(shoal_errmsg(), "");
}

static void test_set_rejects_unknown_names_and_bad_values_without_change(void **state)
{
    shoal_topic_config_t cfg, before;
    (void)state;
    shoal_topic_config_init(&cfg);
    before = cfg;
    assert_int_equal(shoal_topic_config_set(&cfg, "retention", "1"), SHOAL_ESETTING);
    assert_int_equal(shoal_topic_config_set(&cfg, NULL, "1"), SHOAL_EINVAL); /* shoal.h */
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", NULL), SHOAL_EINVAL);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "12x"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "-2"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.bytes", "-1K"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "partitions", "0"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "ring.slots", "65"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "2G"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "storage", "tape"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "cleanup.policy", "none"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "flush.ms", "99999999999999999999"),
                     SHOAL_ECONFIG);
    /* blanks on either side, alike (" 64K" used to pass, "64K " not) */
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", " 64K"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "64K "), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "\t1000"), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_config_set(&cfg, "storage", " disk"), SHOAL_ECONFIG);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
}

/* Sizes take K, M or G in either case; a time or a count with one is refused, naming the
 * unit, since retention.ms=1K (1024 ms) is almost certainly meant as something else. */
static void test_only_sizes_take_a_suffix_in_either_case(void **state)
{
    static const char *const not_sizes[] = {"retention.ms",        "segment.ms",     "flush.ms",
                                            "delete.retention.ms", "flush.messages", "partitions",
                                            "ring.slots"};
    shoal_topic_config_t cfg, before;
    (void)state;
    shoal_topic_config_init(&cfg);
    assert_int_equal(shoal_topic_config_set(&cfg, "segment.bytes", "64k"), 0);
    assert_int_equal(cfg.segment_bytes, 65536);
    assert_int_equal(shoal_topic_config_set(&cfg, "max.message.bytes", "1m"), 0);
    assert_int_equal(cfg.max_record_bytes, 1 << 20);
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.bytes", "2g"), 0);
    assert_int_equal(cfg.retention_bytes, 2LL << 30);
    before = cfg;
    for (size_t i = 0; i < sizeof(not_sizes) / sizeof(not_sizes[0]); i++) {
        assert_int_equal(shoal_topic_config_set(&cfg, not_sizes[i], "1K"), SHOAL_ECONFIG);
        assert_non_null(strstr(shoal_errmsg(), "K, M and G are for sizes in bytes"));
        assert_int_equal(shoal_topic_config_set(&cfg, not_sizes[i], "2m"), SHOAL_ECONFIG);
        assert_int_equal(shoal_topic_config_set(&cfg, not_sizes[i], "3G"), SHOAL_ECONFIG);
    }
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "1K"), SHOAL_ECONFIG);
    assert_string_equal(shoal_errmsg(), "retention.ms: cannot use '1K': K, M and G are for sizes "
                                        "in bytes; retention.ms is a number of milliseconds");
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "-1k"), SHOAL_ECONFIG);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    assert_int_equal(shoal_topic_config_set(&cfg, "retention.ms", "1000"), 0);
}

static void test_get_formats_every_setting_back_to_what_set_accepts(void **state)
{
    shoal_topic_config_t cfg, copy;
    const char *name;
    char buf[64];
    (void)state;
    shoal_topic_config_init(&cfg);
    cfg.storage = SHOAL_STORAGE_MEMORY;
    cfg.cleanup_policy = 3;
    copy = cfg;
    for (size_t i = 0; (name = shoal_topic_setting_name(i)) != NULL; i++) {
        assert_int_equal(shoal_topic_config_get(&cfg, name, buf, sizeof(buf)), 0);
        assert_int_equal(shoal_topic_config_set(&copy, name, buf), 0);
    }
    assert_memory_equal(&cfg, &copy, sizeof(cfg));
    assert_int_equal(shoal_topic_config_get(&cfg, "nope", buf, sizeof(buf)), SHOAL_ESETTING);
    assert_int_equal(shoal_topic_config_get(&cfg, "retention.ms", buf, 3), -ENOSPC);
}

static void test_check_rejects_ranges_and_combinations(void **state)
{
    shoal_topic_config_t cfg;
    (void)state;
    shoal_topic_config_init(&cfg);
    cfg.partitions = 1025;
    assert_int_equal(shoal_topic_config_check(&cfg), SHOAL_EPARTITIONS);
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 1ull << 63; /* said as the unsigned value it is, not as negative */
    assert_int_equal(shoal_topic_config_check(&cfg), SHOAL_ECONFIG);
    assert_non_null(strstr(shoal_errmsg(), "not 9223372036854775808"));
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10;
    /* max.message.bytes at its default counts as half a segment, as create sends it (a
     * library session found the check refusing what create took); shoald's own check takes
     * the values as they are */
    assert_int_equal(shoal_topic_config_check(&cfg), 0);
    assert_int_equal(topic_config_check(&cfg), SHOAL_ECONFIG); /* 1 MiB > 32 KiB */
    cfg.max_record_bytes = (32 << 10) + 1;
    assert_int_equal(shoal_topic_config_check(&cfg), SHOAL_ECONFIG);
    cfg.max_record_bytes = 32 << 10;
    assert_int_equal(shoal_topic_config_check(&cfg), 0);
    cfg.cleanup_policy = 0;
    assert_int_equal(shoal_topic_config_check(&cfg), SHOAL_ECONFIG);
}

/* init zeroes the reserved space (shoal.h, VERSIONS AND THE ABI); the check refuses any
 * of it set, as a config from a newer shoal.h or one never initialised would have it. */
static void test_reserved_fields_are_zeroed_by_init_and_refused_when_set(void **state)
{
    shoal_topic_config_t cfg;
    (void)state;
    memset(&cfg, 0xa5, sizeof(cfg));
    shoal_topic_config_init(&cfg);
    assert_int_equal(cfg.pad_, 0);
    for (size_t i = 0; i < sizeof(cfg.reserved_) / sizeof(cfg.reserved_[0]); i++) {
        assert_int_equal(cfg.reserved_[i], 0);
        cfg.reserved_[i] = 1;
        assert_int_equal(shoal_topic_config_check(&cfg), SHOAL_ECONFIG);
        cfg.reserved_[i] = 0;
    }
    assert_int_equal(shoal_topic_config_check(&cfg), 0);
    cfg.pad_ = 1;
    assert_int_equal(shoal_topic_config_check(&cfg), SHOAL_ECONFIG);
}

static void test_only_layout_settings_are_immutable(void **state)
{
    (void)state;
    assert_true(topic_setting_is_alterable("partitions")); /* shoald lets them only grow */
    assert_false(topic_setting_is_alterable("storage"));
    assert_false(topic_setting_is_alterable("segment.bytes"));
    assert_false(topic_setting_is_alterable("ring.slots"));
    assert_false(topic_setting_is_alterable("nope"));
    assert_true(topic_setting_is_alterable("retention.ms"));
    assert_true(topic_setting_is_alterable("max.message.bytes"));
    assert_true(topic_setting_is_alterable("cleanup.policy"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_pass_the_check),
        cmocka_unit_test(test_set_parses_numbers_sizes_and_words),
        cmocka_unit_test(test_a_success_clears_the_last_failures_detail),
        cmocka_unit_test(test_set_rejects_unknown_names_and_bad_values_without_change),
        cmocka_unit_test(test_only_sizes_take_a_suffix_in_either_case),
        cmocka_unit_test(test_get_formats_every_setting_back_to_what_set_accepts),
        cmocka_unit_test(test_check_rejects_ranges_and_combinations),
        cmocka_unit_test(test_reserved_fields_are_zeroed_by_init_and_refused_when_set),
        cmocka_unit_test(test_only_layout_settings_are_immutable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
