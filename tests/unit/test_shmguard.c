/* test_shmguard.c - a guarded mapping whose file is cut short reads zeros past the cut and
 * is marked; any other SIGBUS (a fault elsewhere, or one sent) still ends the process; the
 * registry grows past one chunk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "shoald/shmguard.h"

#define PAGE     4096
#define MAP_LEN  (8 * PAGE)
#define MANY_MAP 3000 /* registrations: three chunks of the registry */

static char path[256];

/* A file of MAP_LEN bytes of 0x5a, mapped shared read-write; its descriptor in *fd. */
static uint8_t *map_file(int *fd)
{
    uint8_t *m;
    snprintf(path, sizeof(path), "/dev/shm/shoal-test-shmguard-%d", (int)getpid());
    assert_true((*fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
    unlink(path);
    assert_int_equal(ftruncate(*fd, MAP_LEN), 0);
    m = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    assert_true(m != MAP_FAILED);
    memset(m, 0x5a, MAP_LEN);
    return m;
}

static void test_a_cut_file_reads_zeros_past_the_cut_and_is_marked(void **state)
{
    volatile uint8_t *m;
    uint32_t faults = shmguard_fault_count();
    int fd;
    (void)state;

    assert_int_equal(shmguard_install(), 0);
    m = map_file(&fd);
    assert_int_equal(shmguard_add((void *)m, MAP_LEN), 0);
    assert_false(shmguard_take((void *)m));

    assert_int_equal(ftruncate(fd, 3 * PAGE), 0); /* what another process could do */
    assert_int_equal(m[3 * PAGE - 1], 0x5a);      /* before the cut: the file */
    assert_false(shmguard_take((void *)m));
    assert_int_equal(m[3 * PAGE], 0);        /* past it: zeros, not SIGBUS */
    assert_int_equal(m[5 * PAGE + 7], 0);    /* the rest of the mapping too, with no more faults */
    m[MAP_LEN - 1] = 1;                      /* and writable (a private page) */
    assert_int_equal(m[3 * PAGE - 1], 0x5a); /* before the cut, still the file ... */
    m[0] = 7;
    assert_int_equal(pread(fd, (void *)&m[1], 1, 0), 1); /* ... and shared with it */
    assert_int_equal(m[1], 7);
    assert_int_equal(shmguard_fault_count(), faults + 1);
    assert_false(shmguard_take((void *)(m + PAGE))); /* asked by the mapping's start */
    assert_true(shmguard_take((void *)m));
    assert_false(shmguard_take((void *)m)); /* taken */
    shmguard_remove((void *)m);
    munmap((void *)m, MAP_LEN);
    close(fd);
}

/* In a child: a cut file whose mapping is not guarded (never, or no longer). */
static int fault_unguarded(void *arg)
{
    bool was_guarded = *(bool *)arg;
    volatile uint8_t *m;
    int fd;

    if (shmguard_install() < 0)
        return 1;
    m = map_file(&fd);
    if (was_guarded) {
        if (shmguard_add((void *)m, MAP_LEN) < 0)
            return 2;
        shmguard_remove((void *)m);
    }
    if (ftruncate(fd, 0) < 0)
        return 3;
    return m[PAGE] == 0 ? 4 : 5; /* never returns: SIGBUS */
}

/* In a child: a SIGBUS sent, not a fault, while a guarded mapping exists. */
static int sent_sigbus(void *arg)
{
    int fd;
    (void)arg;
    if (shmguard_install() < 0 || shmguard_add(map_file(&fd), MAP_LEN) < 0)
        return 1;
    kill(getpid(), SIGBUS);
    return 2;
}

static void test_a_sigbus_outside_every_guarded_mapping_still_ends_the_process(void **state)
{
    bool was_guarded[] = {false, true};
    (void)state;

    for (size_t i = 0; i < 2; i++) {
        pid_t pid = harness_fork(fault_unguarded, &was_guarded[i], 10);
        assert_true(pid > 0);
        assert_int_equal(harness_wait(pid, 10000), 128 + SIGBUS);
    }
    assert_int_equal(harness_wait(harness_fork(sent_sigbus, NULL, 10), 10000), 128 + SIGBUS);
}

/* In a child, stderr to the pipe in arg: a cut file whose mapping is marked fatal. */
static int fault_fatal(void *arg)
{
    volatile uint8_t *m;
    int fd;

    if (dup2(*(int *)arg, STDERR_FILENO) < 0 || shmguard_install() < 0)
        return 1;
    m = map_file(&fd);
    shmguard_fatal((void *)m, MAP_LEN, "the mapping is gone\n");
    if (ftruncate(fd, 0) < 0)
        return 3;
    return m[PAGE] == 0 ? 4 : 5; /* never returns: SIGBUS */
}

/* A fault in the mapping marked fatal (the metadata store's) says its message, then ends
 * the process as any SIGBUS would. */
static void test_a_fault_in_the_fatal_mapping_says_why_and_ends_the_process(void **state)
{
    char said[64] = "";
    int pipe_fds[2];
    pid_t pid;
    (void)state;

    assert_int_equal(pipe(pipe_fds), 0);
    assert_true((pid = harness_fork(fault_fatal, &pipe_fds[1], 10)) > 0);
    close(pipe_fds[1]);
    assert_int_equal(harness_wait(pid, 10000), 128 + SIGBUS);
    assert_true(read(pipe_fds[0], said, sizeof(said) - 1) > 0);
    close(pipe_fds[0]);
    assert_string_equal(said, "the mapping is gone\n");
}

/* Many registrations: each is found by its start, removal frees its entry for the next,
 * and a fault in the last one is still caught. */
static void test_the_registry_holds_many_mappings(void **state)
{
    static uint8_t fake[MANY_MAP];
    volatile uint8_t *m;
    int fd;
    (void)state;

    assert_int_equal(shmguard_install(), 0);
    for (size_t i = 0; i < MANY_MAP; i++)
        assert_int_equal(shmguard_add(&fake[i], 1), 0);
    for (size_t i = 0; i < MANY_MAP; i += 2)
        shmguard_remove(&fake[i]);
    m = map_file(&fd);
    assert_int_equal(shmguard_add((void *)m, MAP_LEN), 0); /* into a freed entry */
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(m[0], 0);
    assert_true(shmguard_take((void *)m));
    assert_false(shmguard_take(&fake[1]));
    shmguard_remove((void *)m);
    for (size_t i = 1; i < MANY_MAP; i += 2)
        shmguard_remove(&fake[i]);
    munmap((void *)m, MAP_LEN);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_cut_file_reads_zeros_past_the_cut_and_is_marked),
        cmocka_unit_test(test_a_sigbus_outside_every_guarded_mapping_still_ends_the_process),
        cmocka_unit_test(test_a_fault_in_the_fatal_mapping_says_why_and_ends_the_process),
        cmocka_unit_test(test_the_registry_holds_many_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
