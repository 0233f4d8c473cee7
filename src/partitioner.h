/* partitioner.h - Kafka's murmur2 and default partition choice. */
#ifndef SHOAL_PARTITIONER_H
#define SHOAL_PARTITIONER_H
#include <stddef.h>
#include <stdint.h>

/* Kafka's Utils.murmur2 (seed 0x9747b28c), bit for bit. */
int32_t shoal__murmur2(const void *data, size_t len);
/* Kafka's Utils.toPositive: clear the sign bit. */
static inline int32_t shoal__to_positive(int32_t v)
{
    return v & 0x7fffffff;
}
#endif
