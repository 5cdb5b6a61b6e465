#include "redis_reply.h"

#include <string.h>

int qr_reply__is(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

int qr_reply__str_eq(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == n &&
           memcmp(r->str, s, n) == 0;
}

int qr_reply__transient(const redisReply *r)
{
    static const char *const codes[] = {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (qr_reply__is(r, codes[i]))
            return 1;
    return 0;
}

int qr_reply__auth(const redisReply *r)
{
    return qr_reply__is(r, "NOAUTH") || qr_reply__is(r, "WRONGPASS") || qr_reply__is(r, "NOPERM");
}

const redisReply *qr_reply__map_get(const redisReply *map, const char *key)
{
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (qr_reply__str_eq(map->element[i], key))
            return map->element[i + 1];
    return NULL;
}
