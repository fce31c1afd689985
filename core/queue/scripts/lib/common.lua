-- Shared helpers, prepended to every queue script at build time (cmake/embed_scripts.cmake).
-- KEYS[1] is always the queue's base key P ("bull:Q:"); other keys are built from it.
local P = KEYS[1]
