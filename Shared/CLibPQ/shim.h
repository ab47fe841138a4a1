#ifndef AIRA_CLIBPQ_SHIM_H
#define AIRA_CLIBPQ_SHIM_H
#include <libpq-fe.h>

/* libpq prints server NOTICEs to stderr by default; this processor drops them. */
static void aira_pq_ignore_notice(void *arg, const char *message) { (void)arg; (void)message; }
static inline void aira_pq_silence_notices(PGconn *conn) { PQsetNoticeProcessor(conn, aira_pq_ignore_notice, 0); }
#endif
