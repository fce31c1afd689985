/* The PostgreSQL side: connections, migrations, schema introspection, API-key decryption.
 * The Lua-facing connection with pipelined writes is the "rex.store_c" module (core/store/lstore.c,
 * wrapped by lua/rex/store.lua). */
#ifndef REX_STORE_H
#define REX_STORE_H

#include <stddef.h>

typedef struct pg_conn PGconn;

/* Opens a connection to a libpq URI or key=value string with connect_timeout seconds and
 * application_name "rex-worker" unless the string sets them. Returns 0 and sets *out, or
 * REX_ECONN with libpq's reason in err (passwords masked). The caller frees *out with PQfinish. */
int rex_pg_connect(const char *conninfo, int connect_timeout_s, PGconn **out, char *err,
                   size_t errlen);

/* Applies the embedded SQL migrations (core/store/sql/NNNN_*.sql) that are not yet recorded in
 * rex_migrations, each in its own transaction, under a session advisory lock so that workers
 * starting together apply each migration once. *applied (may be NULL) receives the number applied
 * now. Returns 0, REX_ECONN when the connection is unusable, or REX_EPROTO with the failing
 * migration's name and the server's message in err. */
int rex_store_migrate(PGconn *c, int *applied, char *err, size_t errlen);

/* Number of embedded migrations and the name of the i-th (static strings). */
int rex_store_migration_count(void);
const char *rex_store_migration_name(int i);

/* Decrypts a REX api_keys.encrypted_key ("salt:iv:tag:ciphertext", standard base64; scrypt
 * N=16384 r=8 p=1 key derivation from the master key, AES-256-GCM with a 16-byte IV). Returns 0
 * and sets *out (NUL-terminated, owned by the caller: wipe and free it with rex_store_secret_free)
 * or REX_EINVAL with a message in err that never contains key material. */
int rex_store_decrypt_api_key(const char *stored, const char *master_key, char **out,
                              size_t *outlen, char *err, size_t errlen);
/* The inverse, for tests and tools: salt (32 bytes) and iv (16 bytes) given. Returns 0 and sets
 * *out (caller frees with rex_free) or REX_EINVAL. */
int rex_store_encrypt_api_key(const char *plaintext, const char *master_key,
                              const unsigned char salt[32], const unsigned char iv[16], char **out,
                              char *err, size_t errlen);
/* Zeroes and frees a secret returned by rex_store_decrypt_api_key (NULL is allowed). */
void rex_store_secret_free(char *s, size_t len);

/* Returns 1 the first time it is called with a given key in this process, 0 afterwards
 * (thread-safe): "warn once per missing optional table". */
int rex_store_first_time(const char *key);

#endif
