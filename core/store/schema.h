/* Schema introspection (internal to the store). */
#ifndef REX_STORE_SCHEMA_H
#define REX_STORE_SCHEMA_H

#include <stddef.h>

typedef struct pg_conn PGconn;

/* The tables the worker knows, NULL-terminated. */
extern const char *const rex__store_tables[];

typedef void (*rex__column_cb)(void *ud, const char *table, const char *column, const char *type,
                               int nullable);

/* Calls cb for each column of the known tables that exist in the search path (a table appearing
 * in several schemas is reported for each; the first schema comes first). Returns 0, REX_ECONN or
 * REX_EPROTO with the reason in err; cb is not called on error. The connection must not be in
 * pipeline mode. */
int rex__store_introspect(PGconn *c, rex__column_cb cb, void *ud, char *err, size_t errlen);

#endif
