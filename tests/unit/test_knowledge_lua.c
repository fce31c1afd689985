/* The knowledge binding inside a worker Lua state: rex.knowledge.native is preloaded, the FFI
 * binding and the in-memory runtime work there as under busted. */
#include "lua_eval.h"
#include "rextest.h"

#include <rex/rex.h>
#include <rex/runtime.h>

#include <lauxlib.h>
#include <lua.h>

static char err[4096];

TEST(binding_in_worker_state) {
    rex_lstate *s;
    CHECK_INT(rex_lstate_new(NULL, &s, err, sizeof(err)), 0);
    CHECK_STR(lua_eval(s, "return type(package.preload['rex.knowledge.native'])"), "function");
    CHECK_STR(lua_eval(s, "local kn = require('rex.knowledge')\n"
                          "local c = kn.chunk('# Title\\nbody text\\f\\fSECOND PAGE\\nmore')\n"
                          "return #c .. ' ' .. c[1].sectionPath .. ' ' .. c[2].page .. ' ' .. "
                          "c[2].sectionPath"),
              "2 Title 3 SECOND PAGE");
    CHECK_STR(lua_eval(s,
                       "local m = require('rex.knowledge.memory').new()\n"
                       "local r = m:ingest({userId = 'u', workflowId = 'w', executionId = 'e',\n"
                       "  title = 'T', contentText = 'Refunds within 30 days.\\fShipping takes 2 "
                       "days.'})\n"
                       "local q = m:retrieve({userId = 'u', workflowId = 'w', executionId = 'e',\n"
                       "  query = 'refund days', topK = 5})\n"
                       "return r.chunkCount .. ' ' .. #q.matches .. ' ' .. "
                       "q.matches[1].chunkIndex"),
              "2 2 0");
    rex_lstate_close(s);
}
