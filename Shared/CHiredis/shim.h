#ifndef AIRA_CHIREDIS_SHIM_H
#define AIRA_CHIREDIS_SHIM_H
/* redisCommand is variadic: callers use redisCommandArgv / redisAppendCommandArgv. */
#include <hiredis/hiredis.h>
#include <sys/time.h>
#endif
