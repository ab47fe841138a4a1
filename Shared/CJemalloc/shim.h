#ifndef AIRA_CJEMALLOC_SHIM_H
#define AIRA_CJEMALLOC_SHIM_H
/* Linking libjemalloc makes it the process's malloc: every allocation — Swift objects, NIO
 * buffers, hiredis, rabbitmq-c, libpq — goes to it instead of glibc's (docs/operations.md).
 * Only the control interface is declared here: <jemalloc/jemalloc.h> would declare malloc and
 * free a second time next to Glibc's. */
#include <stddef.h>
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif
