/* The LuaJIT runtime: one lua_State per worker thread, created once, never shared.
 *
 * A state has the standard libraries, `require("rex")` (lua/rex/init.lua plus the C functions of
 * rex.core), `require("rex.json")` and `require("cjson")` (both linked into the binary), and
 * package.path pointing at the project's lua/ directory. */
#ifndef REX_RUNTIME_H
#define REX_RUNTIME_H

#include <stddef.h>

typedef struct lua_State lua_State;
typedef struct rex_lstate rex_lstate;

struct rex_lstate_opts {
    size_t memory_limit; /* bytes the state may hold; 0 = unlimited */
    const char *home;    /* directory holding lua/ and nodes/; NULL = rex_runtime_home() */
};

/* Creates a state. Returns 0 and sets *out, or a negative REX_E* code with the reason in err
 * (a Lua error while loading the rex module is REX_ELUA). The caller owns *out and closes it with
 * rex_lstate_close on the thread that uses it. */
int rex_lstate_new(const struct rex_lstate_opts *opts, rex_lstate **out, char *err, size_t errlen);
void rex_lstate_close(rex_lstate *s);
lua_State *rex_lstate_L(rex_lstate *s);
/* Bytes the state holds now. The peak is tracked only for states with a memory_limit (they use
 * the project's counting allocator; the others use LuaJIT's own, faster one) and is 0 otherwise. */
size_t rex_lstate_memory(const rex_lstate *s);
size_t rex_lstate_memory_peak(const rex_lstate *s);

/* Runs a file or string chunk with arguments taken from the stack top (nargs values), leaving
 * nresults results. Returns 0 or REX_ELUA with the message (and traceback) in err. */
int rex_lstate_pcall(rex_lstate *s, int nargs, int nresults, char *err, size_t errlen);

/* The directory holding lua/ and nodes/: $REX_HOME if set, else <exe>/../share/rex-worker if it
 * exists, else the source tree the binary was built from. Static string. */
const char *rex_runtime_home(void);

#endif
