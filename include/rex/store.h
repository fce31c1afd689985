/* The PostgreSQL side: connections. (Schema, migrations and telemetry come with later issues.) */
#ifndef REX_STORE_H
#define REX_STORE_H

#include <stddef.h>

typedef struct pg_conn PGconn;

/* Opens a connection to a libpq URI or key=value string with connect_timeout seconds and
 * application_name "rex-worker" unless the string sets them. Returns 0 and sets *out, or
 * REX_ECONN with libpq's reason in err (passwords masked). The caller frees *out with PQfinish. */
int rex_pg_connect(const char *conninfo, int connect_timeout_s, PGconn **out, char *err,
                   size_t errlen);

#endif
