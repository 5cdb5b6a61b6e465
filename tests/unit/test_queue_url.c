/* Broker URLs without a broker: syntax (queue_url_check), redaction
 * (queue_url_redact), and the ensured-groups cache both brokers use. */
#include "mem.h"
#include "queue.h"
#include "queue_ensured.h"
#include "test.h"

static const char *redact(const char *url)
{
    static char buf[256];
    queue_url_redact(url, buf, sizeof buf);
    return buf;
}

TEST(redact_hides_passwords)
{
    ASSERT_STR_EQ(redact("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
    ASSERT_STR_EQ(redact("redis://bob:s3cret@h:6379"), "redis://bob:***@h:6379");
    /* an unencoded @ in the password: the last @ ends the userinfo */
    ASSERT_STR_EQ(redact("redis://:p@ss@h:1"), "redis://:***@h:1");
    ASSERT_STR_EQ(redact("redis://h:6379/0"), "redis://h:6379/0");
    ASSERT_STR_EQ(redact("kafka://a:1,b:2"), "kafka://a:1,b:2");
    ASSERT_STR_EQ(redact("kafka://u@h:1"), "kafka://u@h:1"); /* a user, no password */
    ASSERT_STR_EQ(redact(":pw@h"), ":***@h");                /* no scheme */
    ASSERT_STR_EQ(redact(NULL), "");
    char small[12];
    queue_url_redact("redis://:s3cretpassword@host", small, sizeof small);
    ASSERT_STR_EQ(small, "redis://:**");
    queue_url_redact("x", NULL, 0);
}

static int check(const char *url, char *err, size_t len)
{
    err[0] = '\0';
    return queue_url_check(url, err, len);
}

TEST(redis_urls)
{
    static const char *const good[] = {"redis://h",          "redis://h:1/2",
                                       "redis://[::1]:6379", "redis://:pw@h:1/0",
                                       "redis://u:p%40w@h",  "redis://h:6379/"};
    static const char *const bad[] = {"redis://",      "redis://h:0",   "redis://h:99999",
                                      "redis://h:x",   "redis://:@h",   "redis://pw@h",
                                      "redis://[::1",  "redis://h/abc", "redis://:p%zzw@h",
                                      "redis://h?x=1", "redis://h b:1", "redis://[::1]x"};
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (check(good[i], err, sizeof err) != QUEUE_OK)
            TEST_FAIL_AT("%s rejected: %s", good[i], err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (check(bad[i], err, sizeof err) != QUEUE_EINVAL)
            TEST_FAIL_AT("%s accepted", bad[i]);
        else
            ASSERT_CONTAINS(err, "redis");
    }
    ASSERT_EQ(check("redis://:topsecret@h:99999", err, sizeof err), QUEUE_EINVAL);
    ASSERT_CONTAINS(err, "99999");
    ASSERT_TRUE(!strstr(err, "topsecret"));
    ASSERT_EQ(check("redis://topsecret@h", err, sizeof err), QUEUE_EINVAL);
    ASSERT_CONTAINS(err, "credentials");
}

TEST(kafka_urls)
{
    char err[512];
    ASSERT_EQ(check("kafka://a:1,[::1]:2,c:65535/", err, sizeof err), QUEUE_OK);
    static const char *const bad[] = {
        "kafka://",         "kafka://h",     "kafka://h:",    "kafka://h:0", "kafka://a:1,",
        "kafka://a:1,,b:2", "kafka://u@h:1", "kafka://h:1/t", "kafka://:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (check(bad[i], err, sizeof err) != QUEUE_EINVAL)
            TEST_FAIL_AT("%s accepted", bad[i]);
        ASSERT_CONTAINS(err, bad[i]);
        ASSERT_CONTAINS(err, "host:port");
    }
    ASSERT_EQ(check("nats://h:1", err, sizeof err), QUEUE_EINVAL);
    ASSERT_CONTAINS(err, "scheme");
    ASSERT_EQ(check("", err, sizeof err), QUEUE_EINVAL);
}

TEST(ensured_set)
{
    queue_ensured e = {0};
    ASSERT_TRUE(queue_ensured__find(&e, "g") == NULL);
    const char *n = queue_ensured__add(&e, "g", mem_strdup("dagq:queue:g"));
    ASSERT_STR_EQ(n, "dagq:queue:g");
    queue_ensured__add(&e, "h", mem_strdup("dagq:queue:h"));
    ASSERT_STR_EQ(queue_ensured__find(&e, "g"), "dagq:queue:g");
    queue_ensured__forget_name(&e, "dagq:queue:g");
    ASSERT_TRUE(queue_ensured__find(&e, "g") == NULL);
    ASSERT_STR_EQ(queue_ensured__find(&e, "h"), "dagq:queue:h");
    queue_ensured__clear(&e);
    ASSERT_EQ(e.n, 0);
    queue_ensured__clear(&e);
}

int main(void)
{
    RUN(redact_hides_passwords);
    RUN(redis_urls);
    RUN(kafka_urls);
    RUN(ensured_set);
    return TEST_DONE();
}
