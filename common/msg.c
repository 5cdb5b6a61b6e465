#include "msg.h"

#include "errbuf.h"
#include "mem.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

/* A real message is well under 1 KiB; anything far larger is not ours. */
#define MSG_MAX_BYTES 65536
/* Deepest container nesting accepted (unknown keys may carry nested values).
 * Must stay well below msgpack-c's MSGPACK_EMBED_STACK_SIZE (32). */
#define MSG_MAX_DEPTH 16

enum { K_V, K_TI, K_TRY, K_DAG, K_TASK, K_RUN, K_GROUP, K_QUEUED_AT, K_COUNT };

static const char *const msg_keys[K_COUNT] = {"v",    "ti",  "try",   "dag",
                                              "task", "run", "group", "queued_at"};

/* ---- encoding ---------------------------------------------------------- */

typedef struct msg_wbuf {
    char *data;
    size_t len, cap;
} msg_wbuf;

/* msgpack_packer write callback backed by mem_realloc (which aborts on OOM),
 * so packing never fails and the result is owned the mem_free way. */
static int msg_wbuf_write(void *opaque, const char *buf, size_t n)
{
    msg_wbuf *w = opaque;
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n)
            cap *= 2;
        w->data = mem_realloc(w->data, cap);
        w->cap = cap;
    }
    memcpy(w->data + w->len, buf, n);
    w->len += n;
    return 0;
}

static void msg_pack_key(msgpack_packer *pk, int k)
{
    size_t n = strlen(msg_keys[k]);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, msg_keys[k], n);
}

static int msg_check_str(const char *s, const char *name, size_t *len, char *errbuf, size_t errlen)
{
    *len = strnlen(s, MSG_ID_MAX);
    if (*len >= MSG_ID_MAX) {
        errbuf_printf(errbuf, errlen, "%s too long (max %d bytes)", name, MSG_ID_MAX - 1);
        return -1;
    }
    return 0;
}

int msg_encode(const msg_task *m, char **out, size_t *len, char *errbuf, size_t errlen)
{
    size_t dag_len, task_len, group_len;

    *out = NULL;
    *len = 0;
    /* Refuse what msg_decode would refuse, so a bad message never reaches a queue. */
    if (m->ti <= 0) {
        errbuf_printf(errbuf, errlen, "ti must be positive (got %" PRId64 ")", m->ti);
        return -1;
    }
    if (m->try_number <= 0) {
        errbuf_printf(errbuf, errlen, "try must be positive (got %" PRId32 ")", m->try_number);
        return -1;
    }
    if (m->run < 0) {
        errbuf_printf(errbuf, errlen, "run must not be negative (got %" PRId64 ")", m->run);
        return -1;
    }
    if (m->queued_at < 0) {
        errbuf_printf(errbuf, errlen, "queued_at must not be negative (got %" PRId64 ")",
                      m->queued_at);
        return -1;
    }
    if (msg_check_str(m->dag, "dag", &dag_len, errbuf, errlen) < 0 ||
        msg_check_str(m->task, "task", &task_len, errbuf, errlen) < 0 ||
        msg_check_str(m->group, "group", &group_len, errbuf, errlen) < 0)
        return -1;

    msg_wbuf w = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, msg_wbuf_write);

    msgpack_pack_map(&pk, K_COUNT);
    msg_pack_key(&pk, K_V);
    msgpack_pack_int64(&pk, MSG_VERSION);
    msg_pack_key(&pk, K_TI);
    msgpack_pack_int64(&pk, m->ti);
    msg_pack_key(&pk, K_TRY);
    msgpack_pack_int64(&pk, m->try_number);
    msg_pack_key(&pk, K_DAG);
    msgpack_pack_str(&pk, dag_len);
    msgpack_pack_str_body(&pk, m->dag, dag_len);
    msg_pack_key(&pk, K_TASK);
    msgpack_pack_str(&pk, task_len);
    msgpack_pack_str_body(&pk, m->task, task_len);
    msg_pack_key(&pk, K_RUN);
    msgpack_pack_int64(&pk, m->run);
    msg_pack_key(&pk, K_GROUP);
    msgpack_pack_str(&pk, group_len);
    msgpack_pack_str_body(&pk, m->group, group_len);
    msg_pack_key(&pk, K_QUEUED_AT);
    msgpack_pack_int64(&pk, m->queued_at);

    *out = w.data;
    *len = w.len;
    return 0;
}

/* ---- decoding ---------------------------------------------------------- */

static uint64_t msg_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * msgpack-c allocates a container's element array from its declared count
 * before reading any element, so a 5-byte `dd ff ff ff ff` asks for ~100 GB,
 * and nested headers multiply that. Its ext32 length + 1 also wraps at
 * 0xffffffff. So before handing bytes to msgpack-c we walk them once without
 * allocating: every header and payload must fit in the buffer, every value
 * still owed by open containers needs at least one byte (which bounds the
 * declared counts by the message size), nesting is at most MSG_MAX_DEPTH, and
 * exactly one value fills the buffer. After this check msgpack-c allocates at
 * most a small multiple of len.
 *
 * One function of ~140 lines on purpose: it is a single loop over the bytes
 * whose state (the counts owed per depth, the offset) every branch of the
 * tag switch updates; cut into pieces, that state would travel through
 * every call.
 */
static int msg_scan(const unsigned char *data, size_t len, char *errbuf, size_t errlen)
{
    uint64_t left[MSG_MAX_DEPTH + 1]; /* values still owed at each depth */
    uint64_t pending = 1;             /* sum of left[] */
    int depth = 0;
    size_t off = 0;

    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        pending--;
        if (off >= len) {
            errbuf_printf(errbuf, errlen, "truncated message (%zu bytes)", len);
            return -1;
        }

        unsigned b = data[off];
        size_t at = off;
        int hdr = 0;          /* bytes of length/count after the tag byte */
        uint64_t payload = 0; /* fixed bytes after the header */
        uint64_t body = 0;    /* bytes given by the length field */
        uint64_t items = 0;   /* container values that follow */
        int container = 0;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            items = 2 * (uint64_t)(b & 0x0f);
            container = 1;
        } else if (b <= 0x9f) {
            items = b & 0x0f;
            container = 1;
        } else if (b <= 0xbf) {
            body = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xc5:
            case 0xc6: /* bin 8/16/32 */
                hdr = 1 << (b - 0xc4);
                break;
            case 0xc7:
            case 0xc8:
            case 0xc9: /* ext 8/16/32: length, type, data */
                hdr = 1 << (b - 0xc7);
                payload = 1;
                break;
            case 0xca: /* float 32 */
                payload = 4;
                break;
            case 0xcb: /* float 64 */
                payload = 8;
                break;
            case 0xcc:
            case 0xcd:
            case 0xce:
            case 0xcf: /* uint 8..64 */
                payload = 1u << (b - 0xcc);
                break;
            case 0xd0:
            case 0xd1:
            case 0xd2:
            case 0xd3: /* int 8..64 */
                payload = 1u << (b - 0xd0);
                break;
            case 0xd4:
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8: /* fixext: type, data */
                payload = 1 + (1u << (b - 0xd4));
                break;
            case 0xd9:
            case 0xda:
            case 0xdb: /* str 8/16/32 */
                hdr = 1 << (b - 0xd9);
                break;
            case 0xdc:
            case 0xdd: /* array 16/32 */
                hdr = 2 << (b - 0xdc);
                container = 1;
                break;
            case 0xde:
            case 0xdf: /* map 16/32 */
                hdr = 2 << (b - 0xde);
                container = 2;
                break;
            default: /* 0xc1, never used */
                errbuf_printf(errbuf, errlen, "invalid msgpack byte 0x%02x at offset %zu", b, at);
                return -1;
            }
        }
        off++;
        if ((size_t)hdr > len - off) {
            errbuf_printf(errbuf, errlen, "truncated message at offset %zu", at);
            return -1;
        }
        if (hdr) {
            uint64_t n = msg_be(data + off, hdr);
            off += (size_t)hdr;
            if (container == 1)
                items = n;
            else if (container == 2)
                items = 2 * n;
            else
                body = n;
        }
        if (payload + body > len - off) {
            errbuf_printf(errbuf, errlen,
                          "truncated message: value at offset %zu needs %" PRIu64
                          " bytes, %zu left",
                          at, payload + body, len - off);
            return -1;
        }
        off += (size_t)(payload + body);
        if (container && items > 0) {
            if (items + pending > len - off) {
                errbuf_printf(errbuf, errlen,
                              "truncated message: container at offset %zu holds %" PRIu64
                              " values, only %zu bytes left",
                              at, items, len - off);
                return -1;
            }
            if (depth == MSG_MAX_DEPTH) {
                errbuf_printf(errbuf, errlen, "msgpack nested deeper than %d levels",
                              MSG_MAX_DEPTH);
                return -1;
            }
            left[++depth] = items;
            pending += items;
        }
    }
    if (off != len) {
        errbuf_printf(errbuf, errlen, "%zu trailing bytes after the message", len - off);
        return -1;
    }
    return 0;
}

static int msg_get_int(const msgpack_object *o, const char *name, int64_t *out, char *errbuf,
                       size_t errlen)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX) {
            errbuf_printf(errbuf, errlen, "%s out of range (%" PRIu64 ")", name, o->via.u64);
            return -1;
        }
        *out = (int64_t)o->via.u64;
        return 0;
    }
    errbuf_printf(errbuf, errlen, "%s must be an integer", name);
    return -1;
}

static int msg_get_str(const msgpack_object *o, const char *name, char dst[MSG_ID_MAX],
                       char *errbuf, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        errbuf_printf(errbuf, errlen, "%s must be a string", name);
        return -1;
    }
    uint32_t n = o->via.str.size;
    if (n > MSG_ID_MAX - 1) {
        errbuf_printf(errbuf, errlen, "%s too long (%" PRIu32 " bytes, max %d)", name, n,
                      MSG_ID_MAX - 1);
        return -1;
    }
    if (n && memchr(o->via.str.ptr, '\0', n)) {
        errbuf_printf(errbuf, errlen, "%s contains a NUL byte", name);
        return -1;
    }
    if (n)
        memcpy(dst, o->via.str.ptr, n);
    dst[n] = '\0';
    return 0;
}

/* The values of the keys dagq knows, by K_*, into val (NULL when absent);
 * -1 on a duplicate. Other keys are ignored. */
static int msg_index(const msgpack_object *map, const msgpack_object **val, char *errbuf,
                     size_t errlen)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            continue; /* not one of ours: ignored like any unknown key */
        for (int j = 0; j < K_COUNT; j++) {
            size_t kl = strlen(msg_keys[j]);
            if (k->via.str.size == kl && memcmp(k->via.str.ptr, msg_keys[j], kl) == 0) {
                if (val[j]) {
                    errbuf_printf(errbuf, errlen, "duplicate key %s", msg_keys[j]);
                    return -1;
                }
                val[j] = &map->via.map.ptr[i].val;
                break;
            }
        }
    }
    return 0;
}

/* The version first: a newer message may mean anything by its other keys. */
static int msg_check_version(const msgpack_object *v, char *errbuf, size_t errlen)
{
    if (!v) {
        errbuf_printf(errbuf, errlen, "missing key v");
        return -1;
    }
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 == MSG_VERSION)
            return 0;
        errbuf_printf(errbuf, errlen, "unsupported message version %" PRIu64, v->via.u64);
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        errbuf_printf(errbuf, errlen, "unsupported message version %" PRId64, v->via.i64);
    } else {
        errbuf_printf(errbuf, errlen, "v must be an integer");
    }
    return -1;
}

/* A required integer key in [lo, hi], or an optional one (o may be NULL:
 * *out untouched) in [lo, hi]. */
static int msg_int_in(const msgpack_object *o, const char *name, int required, int64_t lo,
                      int64_t hi, const char *range, int64_t *out, char *errbuf, size_t errlen)
{
    int64_t n;
    if (!o) {
        if (required)
            errbuf_printf(errbuf, errlen, "missing key %s", name);
        return required ? -1 : 0;
    }
    if (msg_get_int(o, name, &n, errbuf, errlen) < 0)
        return -1;
    if (n < lo || n > hi) {
        errbuf_printf(errbuf, errlen, "%s must %s (got %" PRId64 ")", name, range, n);
        return -1;
    }
    *out = n;
    return 0;
}

/* Walks the decoded map into *t; the map comes from msgpack-c after msg_scan. */
static int msg_from_map(const msgpack_object *map, msg_task *t, char *errbuf, size_t errlen)
{
    const msgpack_object *val[K_COUNT] = {0};
    int64_t try_number = 0;
    char try_range[64];
    snprintf(try_range, sizeof try_range, "be positive and at most %" PRId32, INT32_MAX);
    if (msg_index(map, val, errbuf, errlen) < 0 ||
        msg_check_version(val[K_V], errbuf, errlen) < 0 ||
        msg_int_in(val[K_TI], "ti", 1, 1, INT64_MAX, "be positive", &t->ti, errbuf, errlen) < 0 ||
        msg_int_in(val[K_TRY], "try", 1, 1, INT32_MAX, try_range, &try_number, errbuf, errlen) <
            0 ||
        msg_int_in(val[K_RUN], "run", 0, 0, INT64_MAX, "not be negative", &t->run, errbuf, errlen) <
            0 ||
        msg_int_in(val[K_QUEUED_AT], "queued_at", 0, 0, INT64_MAX, "not be negative", &t->queued_at,
                   errbuf, errlen) < 0)
        return -1;
    t->try_number = (int32_t)try_number;
    if (val[K_DAG] && msg_get_str(val[K_DAG], "dag", t->dag, errbuf, errlen) < 0)
        return -1;
    if (val[K_TASK] && msg_get_str(val[K_TASK], "task", t->task, errbuf, errlen) < 0)
        return -1;
    if (val[K_GROUP] && msg_get_str(val[K_GROUP], "group", t->group, errbuf, errlen) < 0)
        return -1;
    return 0;
}

int msg_decode(const void *data, size_t len, msg_task *m, char *errbuf, size_t errlen)
{
    const unsigned char *p = data;
    msg_task t;
    msgpack_unpacked up;
    int rc = -1;

    memset(m, 0, sizeof(*m));
    memset(&t, 0, sizeof(t));
    msgpack_unpacked_init(&up);

    if (!p || len == 0) {
        errbuf_printf(errbuf, errlen, "empty message");
        goto out;
    }
    if (len > MSG_MAX_BYTES) {
        errbuf_printf(errbuf, errlen, "message too large (%zu bytes, max %d)", len, MSG_MAX_BYTES);
        goto out;
    }
    if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf)) {
        errbuf_printf(errbuf, errlen, "not a msgpack map (first byte 0x%02x)", p[0]);
        goto out;
    }
    if (msg_scan(p, len, errbuf, errlen) < 0)
        goto out;

    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&up, data, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len || up.data.type != MSGPACK_OBJECT_MAP) {
        /* msg_scan accepted it, so this would be a msgpack-c limit we missed. */
        errbuf_printf(errbuf, errlen, "msgpack decode failed (code %d)", (int)ur);
        goto out;
    }
    if (msg_from_map(&up.data, &t, errbuf, errlen) < 0)
        goto out;
    *m = t;
    rc = 0;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}
