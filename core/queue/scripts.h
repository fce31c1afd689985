/* The queue's Redis Lua scripts, embedded at build time (internal). */
#ifndef REX_QUEUE_SCRIPTS_H
#define REX_QUEUE_SCRIPTS_H

#include <stddef.h>

struct rex__queue_script {
    const char *name; /* file name without .lua */
    const char *text; /* the lib/ prelude followed by the script */
    size_t len;
};

extern const struct rex__queue_script rex__queue_scripts[];
extern const int rex__queue_nscripts;

#endif
