/* Reply objects of an async Redis connection allocated from an arena (see replyarena.c). */
#ifndef REX_QUEUE_REPLYARENA_H
#define REX_QUEUE_REPLYARENA_H

#include <hiredis/hiredis.h>

typedef struct rex_reply_arena rex_reply_arena;

rex_reply_arena *rex_reply_arena_new(void);
/* Makes the reader build its replies in the arena. One reader at a time per arena. */
void rex_reply_arena_attach(redisReader *r, rex_reply_arena *a);
/* The owner's reference; the arena goes once no reply built in it is alive either. */
void rex_reply_arena_release(rex_reply_arena *a);

#endif
