/* daemon_config.h - shoald's configuration for the unit tests that run the daemon's modules
 * in this process (a broker, its server, its group coordinator): every directory under dir,
 * the shm directory too, so /dev/shm is not touched. Include after cmocka.h and
 * shoald/config.h. */
#ifndef SHOAL_TESTS_DAEMON_CONFIG_H
#define SHOAL_TESTS_DAEMON_CONFIG_H

#include <limits.h>
#include <stdio.h>

/* Set key to value in cfg; the test fails when it is refused. */
static inline void config_must_set(shoald_config_t *cfg, const char *key, const char *value)
{
    char err[256];
    if (config_set(cfg, key, value, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

/* A default configuration with <dir>/data, <dir>/run, shm directory dir, and instance. */
static inline void daemon_config(shoald_config_t *cfg, const char *dir, const char *instance)
{
    char path[PATH_MAX];

    config_init(cfg);
    snprintf(path, sizeof(path), "%s/data", dir);
    config_must_set(cfg, "data.dir", path);
    snprintf(path, sizeof(path), "%s/run", dir);
    config_must_set(cfg, "runtime.dir", path);
    config_must_set(cfg, "shm.dir", dir);
    config_must_set(cfg, "instance", instance);
}

#endif
