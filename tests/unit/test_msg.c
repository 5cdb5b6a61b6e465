#include "mem.h"
#include "msg.h"
#include "test.h"

#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static msg_task sample(void)
{
    msg_task m;
    memset(&m, 0, sizeof(m));
    m.ti = 123456789012LL;
    m.try_number = 3;
    m.run = 42;
    m.queued_at = 1706659200123456LL;
    strcpy(m.dag, "etl_daily");
    strcpy(m.task, "load.orders");
    strcpy(m.group, "default");
    return m;
}

/* A raw msgpack writer for crafting messages msg_encode never produces. */
typedef struct raw {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} raw;

static void raw_init(raw *r)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

static void raw_str(raw *r, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(&r->pk, n);
    msgpack_pack_str_body(&r->pk, s, n);
}

static void raw_kv_int(raw *r, const char *k, int64_t v)
{
    raw_str(r, k);
    msgpack_pack_int64(&r->pk, v);
}

static void raw_kv_str(raw *r, const char *k, const char *v)
{
    raw_str(r, k);
    raw_str(r, v);
}

static int raw_decode(raw *r, msg_task *m, char *err, size_t errlen)
{
    int rc = msg_decode(r->sb.data, r->sb.size, m, err, errlen);
    msgpack_sbuffer_destroy(&r->sb);
    return rc;
}

/* Decodes bytes expected to fail; checks the reason and that *m was cleared. */
#define EXPECT_DECODE_ERR(data, len, needle)                                                       \
    do {                                                                                           \
        msg_task m_;                                                                               \
        memset(&m_, 0x5a, sizeof(m_));                                                             \
        char err_[256] = "";                                                                       \
        ASSERT_EQ(msg_decode((data), (len), &m_, err_, sizeof(err_)), -1);                         \
        ASSERT_CONTAINS(err_, (needle));                                                           \
        ASSERT_EQ(m_.ti, 0);                                                                       \
        ASSERT_EQ(m_.dag[0], 0);                                                                   \
    } while (0)

/* A valid header {v:1, ti:7, try:1} followed by one more key/value written by f. */
static int decode_with(void (*f)(raw *), msg_task *m, char *err, size_t errlen)
{
    raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 4);
    raw_kv_int(&r, "v", 1);
    raw_kv_int(&r, "ti", 7);
    raw_kv_int(&r, "try", 1);
    f(&r);
    return raw_decode(&r, m, err, errlen);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    /* xorshift64*: fixed seed, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* ---- round trip --------------------------------------------------------- */

TEST(round_trip_every_field)
{
    msg_task in = sample(), out;
    char *buf = NULL, err[256] = "";
    size_t len = 0;

    ASSERT_EQ(msg_encode(&in, &buf, &len, err, sizeof(err)), 0);
    ASSERT_TRUE(buf != NULL);
    ASSERT_TRUE(len > 0 && len < 200);
    ASSERT_EQ(msg_decode(buf, len, &out, err, sizeof(err)), 0);
    ASSERT_EQ(out.ti, in.ti);
    ASSERT_EQ(out.try_number, in.try_number);
    ASSERT_EQ(out.run, in.run);
    ASSERT_EQ(out.queued_at, in.queued_at);
    ASSERT_STR_EQ(out.dag, "etl_daily");
    ASSERT_STR_EQ(out.task, "load.orders");
    ASSERT_STR_EQ(out.group, "default");
    mem_free(buf);
}

TEST(round_trip_extremes)
{
    msg_task in, out;
    memset(&in, 0, sizeof(in));
    in.ti = INT64_MAX;
    in.try_number = INT32_MAX;
    in.run = INT64_MAX;
    in.queued_at = INT64_MAX;
    memset(in.dag, 'd', MSG_ID_MAX - 1); /* longest allowed: 255 bytes */
    memset(in.task, 't', MSG_ID_MAX - 1);
    memset(in.group, 'g', MSG_ID_MAX - 1);
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    ASSERT_EQ(msg_encode(&in, &buf, &len, err, sizeof(err)), 0);
    ASSERT_EQ(msg_decode(buf, len, &out, err, sizeof(err)), 0);
    ASSERT_TRUE(memcmp(&in, &out, sizeof(in)) == 0);
    mem_free(buf);

    /* smallest: ti 1, try 1, empty strings, no run, no time */
    memset(&in, 0, sizeof(in));
    in.ti = 1;
    in.try_number = 1;
    ASSERT_EQ(msg_encode(&in, &buf, &len, err, sizeof(err)), 0);
    ASSERT_EQ(msg_decode(buf, len, &out, err, sizeof(err)), 0);
    ASSERT_TRUE(memcmp(&in, &out, sizeof(in)) == 0);
    mem_free(buf);
}

TEST(encoded_keys)
{
    msg_task in = sample();
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    ASSERT_EQ(msg_encode(&in, &buf, &len, err, sizeof(err)), 0);

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    ASSERT_EQ(msgpack_unpack_next(&up, buf, len, NULL), MSGPACK_UNPACK_SUCCESS);
    ASSERT_EQ(up.data.type, MSGPACK_OBJECT_MAP);
    static const char *const keys[] = {"v",    "ti",  "try",   "dag",
                                       "task", "run", "group", "queued_at"};
    ASSERT_EQ(up.data.via.map.size, 8);
    for (uint32_t i = 0; i < up.data.via.map.size && i < 8; i++) {
        msgpack_object k = up.data.via.map.ptr[i].key;
        ASSERT_EQ(k.type, MSGPACK_OBJECT_STR);
        ASSERT_EQ(k.via.str.size, strlen(keys[i]));
        ASSERT_TRUE(memcmp(k.via.str.ptr, keys[i], k.via.str.size) == 0);
    }
    ASSERT_EQ(up.data.via.map.ptr[0].val.via.u64, 1); /* v */
    msgpack_unpacked_destroy(&up);
    mem_free(buf);
}

TEST(encode_rejects)
{
    char *buf = (char *)"x", err[256] = "";
    size_t len = 99;
    msg_task m = sample();

    memset(m.dag, 'a', MSG_ID_MAX); /* no NUL inside the field */
    ASSERT_EQ(msg_encode(&m, &buf, &len, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "dag too long");
    ASSERT_TRUE(buf == NULL);
    ASSERT_EQ(len, 0);

    m = sample();
    memset(m.task, 'a', MSG_ID_MAX);
    ASSERT_EQ(msg_encode(&m, &buf, &len, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "task too long");

    m = sample();
    memset(m.group, 'a', MSG_ID_MAX);
    ASSERT_EQ(msg_encode(&m, &buf, &len, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "group too long");

    m = sample();
    m.ti = 0;
    ASSERT_EQ(msg_encode(&m, &buf, &len, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "ti must be positive");

    m = sample();
    m.try_number = -1;
    ASSERT_EQ(msg_encode(&m, &buf, &len, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "try must be positive");

    m = sample();
    m.run = -1;
    ASSERT_EQ(msg_encode(&m, &buf, &len, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "run");

    m = sample();
    m.queued_at = -1;
    ASSERT_EQ(msg_encode(&m, &buf, &len, NULL, 0), -1); /* no errbuf: still safe */
}

/* ---- keys --------------------------------------------------------------- */

TEST(unknown_keys_ignored)
{
    raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 9);
    raw_kv_int(&r, "v", 1);
    raw_kv_str(&r, "priority", "high"); /* a future key */
    raw_kv_int(&r, "ti", 5);
    raw_str(&r, "nested"); /* a future key with a nested value */
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_map(&r.pk, 1);
    raw_kv_str(&r, "ti", "not this one");
    msgpack_pack_double(&r.pk, 1.5);
    raw_kv_int(&r, "try", 2);
    msgpack_pack_int64(&r.pk, 99); /* a non-string key */
    raw_str(&r, "x");
    /* "ti" followed by a NUL is not "ti" */
    msgpack_pack_str(&r.pk, 3);
    msgpack_pack_str_body(&r.pk, "ti\0", 3);
    msgpack_pack_true(&r.pk);
    raw_kv_str(&r, "TI", "case matters");
    raw_str(&r, "blob");
    msgpack_pack_bin(&r.pk, 3);
    msgpack_pack_bin_body(&r.pk, "\0\1\2", 3);

    msg_task m;
    char err[256] = "";
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), 0);
    ASSERT_STR_EQ(err, "");
    ASSERT_EQ(m.ti, 5);
    ASSERT_EQ(m.try_number, 2);
    ASSERT_EQ(m.run, 0);
    ASSERT_EQ(m.queued_at, 0);
    ASSERT_STR_EQ(m.dag, ""); /* optional strings absent: empty */
    ASSERT_STR_EQ(m.task, "");
    ASSERT_STR_EQ(m.group, "");
}

TEST(unknown_version)
{
    raw r;
    msg_task m;
    char err[256];

    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_kv_int(&r, "v", 2);
    raw_kv_int(&r, "ti", 5);
    raw_kv_int(&r, "try", 1);
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "unsupported message version 2");

    /* the version is checked before anything else a newer format may change */
    raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    raw_kv_int(&r, "v", 7);
    raw_kv_str(&r, "ti", "uuid-like");
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "unsupported message version 7");

    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_kv_int(&r, "v", -1);
    raw_kv_int(&r, "ti", 5);
    raw_kv_int(&r, "try", 1);
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "unsupported message version -1");

    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_str(&r, "v");
    msgpack_pack_uint64(&r.pk, UINT64_MAX);
    raw_kv_int(&r, "ti", 5);
    raw_kv_int(&r, "try", 1);
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "unsupported message version 18446744073709551615");

    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_kv_int(&r, "v", 0);
    raw_kv_int(&r, "ti", 5);
    raw_kv_int(&r, "try", 1);
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "unsupported message version 0");

    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_kv_str(&r, "v", "1");
    raw_kv_int(&r, "ti", 5);
    raw_kv_int(&r, "try", 1);
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "v must be an integer");

    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_str(&r, "v");
    msgpack_pack_double(&r.pk, 1.0);
    raw_kv_int(&r, "ti", 5);
    raw_kv_int(&r, "try", 1);
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "v must be an integer");
}

TEST(missing_keys)
{
    static const char *const names[] = {"v", "ti", "try"};
    for (int skip = 0; skip < 3; skip++) {
        raw r;
        raw_init(&r);
        msgpack_pack_map(&r.pk, 3);
        for (int i = 0; i < 3; i++)
            if (i != skip)
                raw_kv_int(&r, names[i], 1);
        raw_kv_str(&r, "dag", "d");
        msg_task m;
        char err[256] = "", want[64];
        ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "missing key %s", names[skip]);
        ASSERT_STR_EQ(err, want);
        ASSERT_STR_EQ(m.dag, "");
    }

    /* empty map */
    EXPECT_DECODE_ERR("\x80", 1, "missing key v");
}

static void add_ti_str(raw *r)
{
    raw_kv_str(r, "dag", "ok");
}

TEST(optional_present)
{
    msg_task m;
    char err[256] = "";
    ASSERT_EQ(decode_with(add_ti_str, &m, err, sizeof(err)), 0);
    ASSERT_EQ(m.ti, 7);
    ASSERT_EQ(m.try_number, 1);
    ASSERT_STR_EQ(m.dag, "ok");
}

static void w_dag_int(raw *r)
{
    raw_kv_int(r, "dag", 5);
}
static void w_task_nil(raw *r)
{
    raw_str(r, "task");
    msgpack_pack_nil(&r->pk);
}
static void w_group_bin(raw *r)
{
    raw_str(r, "group");
    msgpack_pack_bin(&r->pk, 2);
    msgpack_pack_bin_body(&r->pk, "ab", 2);
}
static void w_group_array(raw *r)
{
    raw_str(r, "group");
    msgpack_pack_array(&r->pk, 1);
    raw_str(r, "default");
}
static void w_run_str(raw *r)
{
    raw_kv_str(r, "run", "42");
}
static void w_run_neg(raw *r)
{
    raw_kv_int(r, "run", -42);
}
static void w_queued_bool(raw *r)
{
    raw_str(r, "queued_at");
    msgpack_pack_true(&r->pk);
}
static void w_queued_float(raw *r)
{
    raw_str(r, "queued_at");
    msgpack_pack_double(&r->pk, 1.7e15);
}
static void w_queued_neg(raw *r)
{
    raw_kv_int(r, "queued_at", -1);
}
static void w_run_huge(raw *r)
{
    raw_str(r, "run");
    msgpack_pack_uint64(&r->pk, (uint64_t)INT64_MAX + 1);
}
static void w_dup_ti(raw *r)
{
    raw_kv_int(r, "ti", 8);
}
static void w_dag_nul(raw *r)
{
    raw_str(r, "dag");
    msgpack_pack_str(&r->pk, 3);
    msgpack_pack_str_body(&r->pk, "a\0b", 3);
}

TEST(wrong_types_optional)
{
    static const struct {
        void (*f)(raw *);
        const char *err;
    } cases[] = {
        {w_dag_int, "dag must be a string"},
        {w_task_nil, "task must be a string"},
        {w_group_bin, "group must be a string"},
        {w_group_array, "group must be a string"},
        {w_run_str, "run must be an integer"},
        {w_run_neg, "run must not be negative"},
        {w_run_huge, "run out of range"},
        {w_queued_bool, "queued_at must be an integer"},
        {w_queued_float, "queued_at must be an integer"},
        {w_queued_neg, "queued_at must not be negative"},
        {w_dup_ti, "duplicate key ti"},
        {w_dag_nul, "dag contains a NUL byte"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msg_task m;
        char err[256] = "";
        ASSERT_EQ(decode_with(cases[i].f, &m, err, sizeof(err)), -1);
        ASSERT_CONTAINS(err, cases[i].err);
        ASSERT_EQ(m.ti, 0);
    }
}

/* {v:1, ti:<ti>, try:<try>} with ti and try written by the callers' packers */
static int decode_ti_try(void (*ti)(msgpack_packer *), void (*try_)(msgpack_packer *), char *err,
                         size_t errlen)
{
    raw r;
    msg_task m;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_kv_int(&r, "v", 1);
    raw_str(&r, "ti");
    ti(&r.pk);
    raw_str(&r, "try");
    try_(&r.pk);
    return raw_decode(&r, &m, err, errlen);
}

static void p_one(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, 1);
}
static void p_zero(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, 0);
}
static void p_neg(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, -3);
}
static void p_min(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, INT64_MIN);
}
static void p_u64max(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, UINT64_MAX);
}
static void p_int32max1(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, (int64_t)INT32_MAX + 1);
}
static void p_str(msgpack_packer *pk)
{
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "1", 1);
}
static void p_float(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.0);
}
static void p_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static void p_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}

TEST(ti_and_try_checked)
{
    char err[256];
    ASSERT_EQ(decode_ti_try(p_one, p_one, err, sizeof(err)), 0);

    ASSERT_EQ(decode_ti_try(p_zero, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti must be positive (got 0)");
    ASSERT_EQ(decode_ti_try(p_neg, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti must be positive (got -3)");
    ASSERT_EQ(decode_ti_try(p_min, p_one, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "ti must be positive");
    ASSERT_EQ(decode_ti_try(p_u64max, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti out of range (18446744073709551615)");
    ASSERT_EQ(decode_ti_try(p_str, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti must be an integer");
    ASSERT_EQ(decode_ti_try(p_float, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti must be an integer");
    ASSERT_EQ(decode_ti_try(p_nil, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti must be an integer");
    ASSERT_EQ(decode_ti_try(p_map, p_one, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "ti must be an integer");

    ASSERT_EQ(decode_ti_try(p_one, p_zero, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "try must be positive");
    ASSERT_EQ(decode_ti_try(p_one, p_neg, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "try must be positive");
    ASSERT_CONTAINS(err, "got -3");
    ASSERT_EQ(decode_ti_try(p_one, p_int32max1, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "try must be positive and at most 2147483647");
    ASSERT_EQ(decode_ti_try(p_one, p_u64max, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "try out of range");
    ASSERT_EQ(decode_ti_try(p_one, p_str, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "try must be an integer");
    ASSERT_EQ(decode_ti_try(p_one, p_float, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "try must be an integer");
}

TEST(not_a_map)
{
    EXPECT_DECODE_ERR("", 0, "empty message");
    EXPECT_DECODE_ERR("\x93\x01\x02\x03", 4, "not a msgpack map");
    EXPECT_DECODE_ERR("\x01", 1, "not a msgpack map");
    EXPECT_DECODE_ERR("\xc0", 1, "not a msgpack map");
    EXPECT_DECODE_ERR("\xa2hi", 3, "not a msgpack map");
    EXPECT_DECODE_ERR("{\"v\":1}", 7, "not a msgpack map"); /* JSON on the wrong queue */

    msg_task m;
    char err[256] = "";
    ASSERT_EQ(msg_decode(NULL, 10, &m, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "empty message");
    ASSERT_EQ(msg_decode("\x01", 1, &m, NULL, 0), -1); /* no errbuf */
    ASSERT_EQ(msg_decode("\x01", 1, &m, err, 1), -1);  /* tiny errbuf */
    ASSERT_STR_EQ(err, "");
}

TEST(trailing_bytes)
{
    msg_task in = sample(), m;
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    ASSERT_EQ(msg_encode(&in, &buf, &len, err, sizeof(err)), 0);
    char *two = mem_alloc(len + 1);
    memcpy(two, buf, len);
    two[len] = 0x00;
    ASSERT_EQ(msg_decode(two, len + 1, &m, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "1 trailing bytes");
    mem_free(two);
    mem_free(buf);
}

/* ---- hostile input ------------------------------------------------------ */

TEST(every_truncation_fails)
{
    msg_task in = sample(), m;
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    ASSERT_EQ(msg_encode(&in, &buf, &len, err, sizeof(err)), 0);
    for (size_t n = 0; n < len; n++) {
        /* a copy of exactly n bytes, so ASan sees any read past the end */
        char *cut = mem_alloc(n);
        memcpy(cut, buf, n);
        memset(&m, 0x5a, sizeof(m));
        err[0] = '\0';
        ASSERT_EQ(msg_decode(cut, n, &m, err, sizeof(err)), -1);
        ASSERT_TRUE(err[0] != '\0');
        ASSERT_EQ(m.ti, 0);
        if (n > 0)
            ASSERT_CONTAINS(err, "truncated");
        mem_free(cut);
    }
    mem_free(buf);
}

TEST(huge_lengths)
{
    /* containers and strings that claim far more than the buffer holds */
    EXPECT_DECODE_ERR("\xdf\xff\xff\xff\xff", 5, "truncated");
    EXPECT_DECODE_ERR("\xde\xff\xff", 3, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xdd\xff\xff\xff\xff", 8, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xdc\xff\xff\x01\x02\x03", 9, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xdb\xff\xff\xff\xff", 8, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xc6\xff\xff\xff\xff", 8, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xc9\xff\xff\xff\xff\x01", 9, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xc9\xff\xff\xff\xfe\x01", 9, "truncated");
    EXPECT_DECODE_ERR("\x81\xdb\xff\xff\xff\xff", 6, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xd8\x01\x02", 6, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xcf\x01", 5, "truncated");
    EXPECT_DECODE_ERR("\x81\xa1v\xc1", 4, "invalid msgpack byte 0xc1");

    /* a map of 4 billion entries padded with a few real ones */
    unsigned char big[64];
    memset(big, 0xc0, sizeof(big));
    memcpy(big, "\xdf\xff\xff\xff\xff", 5);
    EXPECT_DECODE_ERR(big, sizeof(big), "truncated");

    /* many nested 4-billion-element arrays: each would be a huge allocation */
    unsigned char nest[5 * 200 + 3];
    memcpy(nest, "\x81\xa1x", 3);
    for (int i = 0; i < 200; i++)
        memcpy(nest + 3 + 5 * i, "\xdd\xff\xff\xff\xff", 5);
    EXPECT_DECODE_ERR(nest, sizeof(nest), "truncated");
}

TEST(nesting_depth)
{
    /* {x: [[[...1...]]]} nested 10 deep is fine as an unknown value ... */
    static const char head[] = "\x84\xa1v\x01\xa2ti\x01\xa3try\x01\xa1x";
    unsigned char buf[64];
    size_t n = sizeof(head) - 1;
    memcpy(buf, head, n);
    for (int i = 0; i < 10; i++)
        buf[n++] = 0x91;
    buf[n++] = 0x01;
    msg_task m;
    char err[256] = "";
    ASSERT_EQ(msg_decode(buf, n, &m, err, sizeof(err)), 0);
    ASSERT_STR_EQ(err, "");
    ASSERT_EQ(m.ti, 1);

    /* ... 40 deep (beyond msgpack-c's own stack of 32) is refused cleanly */
    n = sizeof(head) - 1;
    for (int i = 0; i < 40; i++)
        buf[n++] = 0x91;
    buf[n++] = 0x01;
    EXPECT_DECODE_ERR(buf, n, "nested deeper");
}

TEST(overlong_strings)
{
    char s[400];
    static const char *const fields[] = {"dag", "task", "group"};
    for (int f = 0; f < 3; f++) {
        for (size_t len = MSG_ID_MAX - 2; len <= MSG_ID_MAX + 1; len++) {
            raw r;
            raw_init(&r);
            msgpack_pack_map(&r.pk, 4);
            raw_kv_int(&r, "v", 1);
            raw_kv_int(&r, "ti", 1);
            raw_kv_int(&r, "try", 1);
            memset(s, 'a' + f, len);
            s[len] = '\0';
            raw_kv_str(&r, fields[f], s);
            msg_task m;
            char err[256] = "";
            int rc = raw_decode(&r, &m, err, sizeof(err));
            if (len <= MSG_ID_MAX - 1) {
                ASSERT_EQ(rc, 0);
                const char *got = f == 0 ? m.dag : f == 1 ? m.task : m.group;
                ASSERT_EQ(strlen(got), len);
            } else {
                char want[64];
                snprintf(want, sizeof(want), "%s too long (%zu bytes, max 255)", fields[f], len);
                ASSERT_EQ(rc, -1);
                ASSERT_STR_EQ(err, want);
            }
        }
    }

    /* a str32 header for a short string is still just a string */
    static const char lit[] = "\x84\xa1v\x01\xa2ti\x01\xa3try\x01\xa3"
                              "dag\xdb\x00\x00\x00\x02ok";
    msg_task m;
    char err[256] = "";
    ASSERT_EQ(msg_decode(lit, sizeof(lit) - 1, &m, err, sizeof(err)), 0);
    ASSERT_STR_EQ(m.dag, "ok");
}

TEST(too_large)
{
    size_t n = 70000;
    raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 4);
    raw_kv_int(&r, "v", 1);
    raw_kv_int(&r, "ti", 1);
    raw_kv_int(&r, "try", 1);
    raw_str(&r, "padding");
    msgpack_pack_bin(&r.pk, n);
    char *pad = mem_calloc(1, n);
    msgpack_pack_bin_body(&r.pk, pad, n);
    mem_free(pad);
    msg_task m;
    char err[256] = "";
    ASSERT_EQ(raw_decode(&r, &m, err, sizeof(err)), -1);
    ASSERT_CONTAINS(err, "message too large");
}

/* Decodes one buffer of exactly len bytes; returns the result. Any crash,
 * leak or out-of-bounds read is ASan's to report. */
static int fuzz_one(const unsigned char *data, size_t len)
{
    unsigned char *copy = mem_alloc(len);
    if (len)
        memcpy(copy, data, len);
    msg_task m;
    char err[128];
    err[0] = '\0';
    int rc = msg_decode(copy, len, &m, err, sizeof(err));
    mem_free(copy);
    if (rc == 0) {
        ASSERT_TRUE(m.ti > 0);
        ASSERT_TRUE(m.try_number > 0);
        ASSERT_TRUE(strlen(m.dag) < MSG_ID_MAX);
        ASSERT_TRUE(strlen(m.task) < MSG_ID_MAX);
        ASSERT_TRUE(strlen(m.group) < MSG_ID_MAX);
    } else {
        ASSERT_EQ(rc, -1);
        ASSERT_TRUE(err[0] != '\0');
        ASSERT_TRUE(strlen(err) < sizeof(err));
    }
    return rc;
}

TEST(fuzz_random_and_mutated)
{
    msg_task in = sample();
    char *valid = NULL, err[256];
    size_t vlen = 0;
    ASSERT_EQ(msg_encode(&in, &valid, &vlen, err, sizeof(err)), 0);

    /* msgpack-heavy alphabet: map/array/str headers and big length bytes */
    static const unsigned char tokens[] = {
        0x80, 0x81, 0x88, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xa1, 0xa2, 0xa3, 0xbf, 0xc0, 0xc1,
        0xc2, 0xc4, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd8, 0xd9,
        0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x00, 0x01, 'v',  't',  'i',  'r',  'y'};
    unsigned char buf[512];
    int ok = 0;
    for (int iter = 0; iter < 100000; iter++) {
        size_t len;
        int kind = (int)(rng() % 4);
        if (kind == 0) { /* uniform random bytes, often starting like a map */
            len = (size_t)(rng() % 64);
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)rng();
            if (len && rng() % 2)
                buf[0] = (unsigned char)(0x80 | (rng() % 16));
        } else if (kind == 1) { /* msgpack-looking token soup */
            len = (size_t)(rng() % 96);
            for (size_t i = 0; i < len; i++)
                buf[i] = tokens[rng() % sizeof(tokens)];
        } else { /* the valid message with a few bytes flipped, cut or extended */
            len = vlen;
            memcpy(buf, valid, vlen);
            int edits = 1 + (int)(rng() % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = (size_t)(rng() % len);
                switch (rng() % 5) {
                case 0:
                    buf[at] ^= (unsigned char)(1u << (rng() % 8));
                    break;
                case 1:
                    buf[at] = (unsigned char)rng();
                    break;
                case 2:
                    buf[at] = tokens[rng() % sizeof(tokens)];
                    break;
                case 3:
                    if (len > 1)
                        len = at + 1; /* truncate */
                    break;
                default:
                    if (len + 8 < sizeof(buf)) { /* insert junk */
                        memmove(buf + at + 4, buf + at, len - at);
                        for (int i = 0; i < 4; i++)
                            buf[at + (size_t)i] = (unsigned char)rng();
                        len += 4;
                    }
                }
            }
        }
        if (fuzz_one(buf, len) == 0)
            ok++;
        if (test__cur_failed)
            break;
    }
    /* some mutations leave a valid message (e.g. a changed letter in dag) */
    ASSERT_TRUE(ok > 0);
    mem_free(valid);
}

int main(void)
{
    RUN(round_trip_every_field);
    RUN(round_trip_extremes);
    RUN(encoded_keys);
    RUN(encode_rejects);
    RUN(unknown_keys_ignored);
    RUN(unknown_version);
    RUN(missing_keys);
    RUN(optional_present);
    RUN(wrong_types_optional);
    RUN(ti_and_try_checked);
    RUN(not_a_map);
    RUN(trailing_bytes);
    RUN(every_truncation_fails);
    RUN(huge_lengths);
    RUN(nesting_depth);
    RUN(overlong_strings);
    RUN(too_large);
    RUN(fuzz_random_and_mutated);
    return TEST_DONE();
}
