/* rex.json codec (internal): see json.c for the semantics. */
#ifndef REX_RUNTIME_JSON_H
#define REX_RUNTIME_JSON_H

#include "base/buf.h"

#include <lua.h>
#include <stddef.h>

/* luaopen-style: pushes the rex.json module table. */
int rex_json_open(lua_State *L);

/* Encodes the value at idx. Returns a string the caller frees with rex_free, or NULL with the
 * reason in err. Never raises. */
char *rex_json_encode_lua(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

/* Decodes s and pushes the value. Returns 0, or REX_EINVAL with the reason in err (nothing
 * pushed). Never raises except on Lua memory errors. */
int rex_json_decode_lua(lua_State *L, const char *s, size_t n, char *err, size_t errlen);

/* Appends d the way the codec prints numbers (no NaN check). */
void rex_json_format_number(rex_buf *b, double d);

#endif
