/* error.c - names and messages of return codes, generated from SHOAL_ERRNO_MAP in shoal.h
 * so that the enum, the names and the messages cannot drift apart. */
#include <string.h>

#include "shoal.h"
#include "util.h"

static const char *const err_names[] = {
#define XX(name, msg) "SHOAL_" #name,
    SHOAL_ERRNO_MAP(XX)
#undef XX
};

static const char *const err_msgs[] = {
#define XX(name, msg) msg,
    SHOAL_ERRNO_MAP(XX)
#undef XX
};

static int shoal_code_index(int err)
{
    int idx = SHOAL_ERR_BASE - err;
    return (err <= SHOAL_ERR_BASE && idx < SHOAL__ERRIDX_COUNT) ? idx : -1;
}

const char *shoal_strerror(int err)
{
    int idx;
    if (err == 0)
        return "success";
    idx = shoal_code_index(err);
    if (idx >= 0)
        return err_msgs[idx];
    if (err < 0 && !shoal__is_code(err))
        return strerror(-err);
    return "unknown error";
}

const char *shoal_err_name(int err)
{
    int idx;
    if (err == 0)
        return "OK";
    idx = shoal_code_index(err);
    if (idx >= 0)
        return err_names[idx];
    if (err < 0 && !shoal__is_code(err)) {
        const char *n = strerrorname_np(-err);
        return n ? n : "ERRNO";
    }
    return "UNKNOWN";
}

const char *shoal_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = SHOAL_VERSION_MAJOR;
    if (minor)
        *minor = SHOAL_VERSION_MINOR;
    if (patch)
        *patch = SHOAL_VERSION_PATCH;
    return SHOAL_VERSION_STRING;
}
