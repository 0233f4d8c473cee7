/* abi.c - the sizes of the public structs, pinned at build time.
 *
 * DESIGN: a program built against shoal.h allocates these structs, passes arrays of them, or
 * indexes arrays the library hands out, so their sizes are part of the ABI the soname names
 * (shoal.h, VERSIONS AND THE ABI). A new field of a struct that ends in reserved_ takes its
 * bytes from there; any other change of size must come with a new soname, and this file is
 * where the build says so. Checked on LP64, where the sizes were fixed; the opaque handles
 * (client, producer, consumer, assignment output) are not part of it. */
#include <stdint.h>

#include "shoal.h"

#if UINTPTR_MAX == UINT64_MAX
#define ABI_SIZE(type, bytes)                                                                      \
    _Static_assert(sizeof(type) == (bytes),                                                        \
                   #type " changed size: see shoal.h, VERSIONS AND THE ABI")

/* with reserved_ space */
ABI_SIZE(shoal_topic_config_t, 128);
ABI_SIZE(shoal_client_options_t, 64);
ABI_SIZE(shoal_producer_options_t, 64);
ABI_SIZE(shoal_consumer_options_t, 184);
ABI_SIZE(shoal_partition_stats_t, 176);

/* fixed until the soname changes */
ABI_SIZE(shoal_partition_info_t, 48);
ABI_SIZE(shoal_topic_info_t, 392);
ABI_SIZE(shoal_header_t, 32);
ABI_SIZE(shoal_message_t, 64);
ABI_SIZE(shoal_record_t, 80);
ABI_SIZE(shoal_ack_t, 16);
ABI_SIZE(shoal_topic_partition_offset_t, 24);
ABI_SIZE(shoal_group_offset_info_t, 280);
ABI_SIZE(shoal_group_member_info_t, 528);
ABI_SIZE(shoal_group_info_t, 512);
ABI_SIZE(shoal_group_listing_t, 288);
ABI_SIZE(shoal_offset_change_t, 24);
ABI_SIZE(shoal_topic_partition_t, 16);
ABI_SIZE(shoal_assign_member_t, 56);
ABI_SIZE(shoal_assign_topic_t, 16);
ABI_SIZE(shoal_assign_input_t, 32);
ABI_SIZE(shoal_assignor_t, 32);
#else
typedef int abi_sizes_are_pinned_on_lp64_only;
#endif
