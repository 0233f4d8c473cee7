/* app.c - a client program built by test_install.sh against an installed libshoal, with
 * nothing but `pkg-config --cflags --libs shoal`: it connects to the daemon at argv[1],
 * creates a topic, produces records, consumes them back and checks them. Exit 0 when all
 * of that worked, else 1 with the reason on stderr. */
#include <shoal.h>
#include <stdio.h>
#include <string.h>

#define N_RECORDS 100

static int fail(const char *what, int rc)
{
    fprintf(stderr, "app: %s: %s (%s)\n", what, shoal_strerror(rc), shoal_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    shoal_client_t *c;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t recs[32];
    shoal_topic_config_t cfg;
    int rc, seen = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: app SOCKET\n");
        return 2;
    }
    if ((rc = shoal_client_open(argv[1], &c)) < 0)
        return fail("connect", rc);
    shoal_topic_config_init(&cfg);
    cfg.partitions = 2;
    if ((rc = shoal_topic_create(c, "installed", &cfg)) < 0)
        return fail("create topic", rc);
    if ((rc = shoal_producer_open(c, "installed", NULL, &p)) < 0)
        return fail("open producer", rc);
    for (int i = 0; i < N_RECORDS; i++) {
        char value[32];
        int n = snprintf(value, sizeof(value), "record-%d", i);
        shoal_message_t m = {.value = value, .value_len = (size_t)n, .partition = i % 2};
        if ((rc = shoal_send(p, &m, NULL)) < 0)
            return fail("send", rc);
    }
    shoal_producer_close(p);
    if ((rc = shoal_consumer_open(c, NULL, &k)) < 0 ||
        (rc = shoal_consumer_assign(k, "installed", NULL, 0)) < 0 ||
        (rc = shoal_consumer_seek(k, "installed", -1, SHOAL_SEEK_BEGINNING, 0)) < 0)
        return fail("open consumer", rc);
    while (seen < N_RECORDS) {
        int n = shoal_poll(k, recs, 32, 2000);
        if (n < 0)
            return fail("poll", n);
        if (n == 0) {
            fprintf(stderr, "app: only %d of %d records came back\n", seen, N_RECORDS);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            char want[32];
            int len;
            int idx = (int)recs[i].offset * 2 + recs[i].partition;
            len = snprintf(want, sizeof(want), "record-%d", idx);
            if (recs[i].value_len != len || memcmp(recs[i].value, want, (size_t)len)) {
                fprintf(stderr, "app: %d/%lld holds the wrong value\n", recs[i].partition,
                        (long long)recs[i].offset);
                return 1;
            }
        }
        seen += n;
    }
    shoal_consumer_close(k);
    if ((rc = shoal_topic_delete(c, "installed")) < 0)
        return fail("delete topic", rc);
    shoal_client_close(c);
    printf("app: produced and consumed %d records with shoal %s\n", N_RECORDS,
           shoal_version(NULL, NULL, NULL));
    return 0;
}
