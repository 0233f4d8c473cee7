/* partitioner.c - Kafka's murmur2 hash and its default choice of partition for a key.
 *
 * DESIGN
 * A key must land on the same partition number as with a Kafka producer, so this is
 * Kafka's Utils.murmur2 bit for bit rather than any murmur2: seed 0x9747b28c, the body read
 * as little-endian 32-bit words whatever the host's byte order, the 1-3 byte tail mixed in
 * with fall-through, and the final >>13, *m, >>15 mix. Java's int arithmetic wraps and
 * its >>> is a logical shift, so everything here is uint32_t and only the result is
 * converted to int32_t. Kafka then takes toPositive(hash) % partitions (not abs(), which
 * would differ for INT32_MIN).
 */
#include "partitioner.h"

#include "util.h"

#define MURMUR2_SEED 0x9747b28cu
#define MURMUR2_M    0x5bd1e995u
#define MURMUR2_R    24

static inline uint32_t murmur2_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int32_t shoal__murmur2(const void *data, size_t len)
{
    const uint8_t *p = data;
    /* Java's length is an int; keys are far below 2^31, the cast matches Kafka for them. */
    uint32_t h = MURMUR2_SEED ^ (uint32_t)len;
    size_t words = len / 4;

    for (size_t i = 0; i < words; i++) {
        uint32_t k = murmur2_load_le32(p + 4 * i);
        k *= MURMUR2_M;
        k ^= k >> MURMUR2_R;
        k *= MURMUR2_M;
        h *= MURMUR2_M;
        h ^= k;
    }

    size_t tail = len & ~(size_t)3; /* index, not pointer: p may be NULL when len is 0 */
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)p[tail + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[tail + 1] << 8;
        /* fall through */
    case 1:
        h ^= p[tail];
        h *= MURMUR2_M;
        break;
    default:
        break;
    }

    h ^= h >> 13;
    h *= MURMUR2_M;
    h ^= h >> 15;
    return (int32_t)h;
}

/* Returns -1 (not a SHOAL_E* code: the result is a partition number) when partitions is 0
 * or when key is NULL with a non-zero key_len. A NULL key of length 0 hashes as the empty
 * key; callers that want Kafka's spreading of null keys must not call this for them. */
int32_t shoal_partition_for_key(const void *key, size_t key_len, uint32_t partitions)
{
    if (partitions == 0 || (key == NULL && key_len != 0))
        return -1;
    uint32_t positive = (uint32_t)shoal__to_positive(shoal__murmur2(key, key_len));
    return (int32_t)(positive % partitions);
}
