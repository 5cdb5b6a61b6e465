#include "mem.h"
#include "redact.h"
#include "test.h"

#include <libpq-fe.h>
#include <stdlib.h>

/* out must not hold secret (when one is given). */
static int holds(const char *out, const char *secret)
{
    return secret && out && strstr(out, secret) != NULL;
}

/* f(in) must be want, and must not contain secret. */
#define EXPECT_REDACT(f, in, want, secret)                                                         \
    do {                                                                                           \
        char *out_ = f(in);                                                                        \
        ASSERT_STR_EQ(out_, (want));                                                               \
        if (holds(out_, (secret)))                                                                 \
            TEST_FAIL_AT("\"%s\" still holds the secret", out_);                                   \
        mem_free(out_);                                                                            \
    } while (0)

#define NOSECRET ((const char *)NULL)

TEST(url_passwords)
{
    EXPECT_REDACT(redact_url, "redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0",
                  "s3cret");
    EXPECT_REDACT(redact_url, "redis://default:s3cret@redis:6379/0",
                  "redis://default:***@redis:6379/0", "s3cret");
    EXPECT_REDACT(redact_url, "rediss://u:p%40ss%3Aw0rd@cache.example.com:6380",
                  "rediss://u:***@cache.example.com:6380", "p%40");
    EXPECT_REDACT(redact_url, "kafka://svc:pw@k1:9092,k2:9092", "kafka://svc:***@k1:9092,k2:9092",
                  "pw@");
    EXPECT_REDACT(redact_url, "postgresql://etl:s3cret@db:5432/etl?sslmode=require",
                  "postgresql://etl:***@db:5432/etl?sslmode=require", "s3cret");
    EXPECT_REDACT(redact_url, "postgres://etl:s3cret@db/etl", "postgres://etl:***@db/etl",
                  "s3cret");
    EXPECT_REDACT(redact_url, "https://user:pw@example.com/x", "https://user:***@example.com/x",
                  "pw@");
    EXPECT_REDACT(redact_url, "HTTP://user:pw@example.com/x", "HTTP://user:***@example.com/x",
                  "pw@");
}

TEST(url_tricky_passwords)
{
    /* @, /, ?, #, : unencoded in the password: the userinfo ends at the last @ */
    EXPECT_REDACT(redact_url, "postgresql://etl:p@ss@db/etl", "postgresql://etl:***@db/etl",
                  "p@ss");
    EXPECT_REDACT(redact_url, "postgresql://etl:pa/ss@db/etl", "postgresql://etl:***@db/etl",
                  "pa/ss");
    EXPECT_REDACT(redact_url, "redis://:pa?ss@h:6379", "redis://:***@h:6379", "pa?ss");
    EXPECT_REDACT(redact_url, "redis://:pa#ss@h:6379", "redis://:***@h:6379", "pa#ss");
    EXPECT_REDACT(redact_url, "redis://u:a:b:c@h", "redis://u:***@h", "a:b:c");
    EXPECT_REDACT(redact_url, "redis://u:it's \"q\"@h", "redis://u:***@h", "it's");
    /* empty password, no password, no userinfo */
    EXPECT_REDACT(redact_url, "redis://:@h:6379/0", "redis://:***@h:6379/0", NOSECRET);
    EXPECT_REDACT(redact_url, "postgresql://etl@db/etl", "postgresql://etl@db/etl", NOSECRET);
    EXPECT_REDACT(redact_url, "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", NOSECRET);
    EXPECT_REDACT(redact_url, "kafka://k1:9092,k2:9092", "kafka://k1:9092,k2:9092", NOSECRET);
    /* IPv6 hosts */
    EXPECT_REDACT(redact_url, "redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0", "pw");
    EXPECT_REDACT(redact_url, "postgresql://[2001:db8::1]:5432/etl",
                  "postgresql://[2001:db8::1]:5432/etl", NOSECRET);
    EXPECT_REDACT(redact_url, "postgresql://u:pw@[2001:db8::1]:5432,[::1]/etl",
                  "postgresql://u:***@[2001:db8::1]:5432,[::1]/etl", "pw@");
    /* a token as the whole userinfo of an http URL */
    EXPECT_REDACT(redact_url, "https://ghp_abc123@github.com/o/r.git",
                  "https://***@github.com/o/r.git", "ghp_abc123");
    /* not URLs */
    EXPECT_REDACT(redact_url, "localhost:6379", "localhost:6379", NOSECRET);
    EXPECT_REDACT(redact_url, "", "", NOSECRET);
    /* not a URL, but shaped like user:password@host: masked all the same */
    EXPECT_REDACT(redact_url, "://x:y@z", ":***@z", "y");
    EXPECT_REDACT(redact_url, "app:s3cret@db:5432", "app:***@db:5432", "s3cret");
    ASSERT_TRUE(redact_url(NULL) == NULL);
}

TEST(url_query_parameters)
{
    EXPECT_REDACT(redact_url,
                  "postgresql://etl@db/etl?sslmode=require&password=pw1&sslpassword=pw2&"
                  "application_name=x",
                  "postgresql://etl@db/etl?sslmode=require&password=***&sslpassword=***&"
                  "application_name=x",
                  "pw");
    EXPECT_REDACT(redact_url, "https://api.example.com/v1?api_key=k1&x=1&access_token=t1#frag",
                  "https://api.example.com/v1?api_key=***&x=1&access_token=***", "t1");
    EXPECT_REDACT(redact_url, "http://h/p?pass%77ord=x1;Token=x2&SECRET=x3&passwd=x4&pass=x5",
                  "http://h/p?pass%77ord=***;Token=***&SECRET=***&passwd=***&pass=***", "x");
    EXPECT_REDACT(redact_url, "https://acct.blob.core.windows.net/c/b?sv=2020&sig=abc%2Fdef",
                  "https://acct.blob.core.windows.net/c/b?sv=2020&sig=***", "abc");
    EXPECT_REDACT(redact_url, "http://h/p?token=", "http://h/p?token=***", NOSECRET);
    EXPECT_REDACT(redact_url, "http://h/p?token", "http://h/p?token", NOSECRET);
    EXPECT_REDACT(redact_url, "http://h/p?x=1&&y=2", "http://h/p?x=1&&y=2", NOSECRET);
    /* both a password and query secrets */
    EXPECT_REDACT(redact_url, "redis://:pw@h?token=t", "redis://:***@h?token=***", "pw");
}

TEST(conninfo_words)
{
    EXPECT_REDACT(redact_conninfo, "host=db user=etl password=s3cret dbname=etl",
                  "host=db user=etl password=*** dbname=etl", "s3cret");
    EXPECT_REDACT(redact_conninfo, "password='a b\\' c' host=db", "password=*** host=db", "a b");
    EXPECT_REDACT(redact_conninfo, "password = 'x y'  host=db", "password = ***  host=db", "x y");
    EXPECT_REDACT(redact_conninfo, "password=a\\ b host=db", "password=*** host=db", "a\\ b");
    EXPECT_REDACT(redact_conninfo, "password='it''s' host=db", "password=*** host=db", "it");
    EXPECT_REDACT(redact_conninfo, "host=db\tpassword=\"dq\"\nuser=u",
                  "host=db\tpassword=***\nuser=u", "dq");
    /* libpq reads blanks after = as nothing: "password= x" has password x */
    EXPECT_REDACT(redact_conninfo, "password= host=db", "password= ***", "host");
    EXPECT_REDACT(redact_conninfo, "host=db password=", "host=db password=***", NOSECRET);
    EXPECT_REDACT(redact_conninfo, "host=db password=''", "host=db password=***", NOSECRET);
    /* unterminated: the rest is the password */
    EXPECT_REDACT(redact_conninfo, "host=db password='abc def user=u", "host=db password=***",
                  "abc");
    /* a word without = is most likely the rest of a password */
    EXPECT_REDACT(redact_conninfo, "host=db password=a b user=u", "host=db password=*** *** user=u",
                  " b ");
    /* other secret keys; a dbname that is itself a connection string */
    EXPECT_REDACT(redact_conninfo, "sslpassword=k1 sslmode=verify-full",
                  "sslpassword=*** sslmode=verify-full", "k1");
    EXPECT_REDACT(redact_conninfo, "dbname='host=x password=p9' host=db", "dbname=*** host=db",
                  "p9");
    EXPECT_REDACT(redact_conninfo, "dbname=postgresql://u:p9@h/db", "dbname=***", "p9");
    EXPECT_REDACT(redact_conninfo, "dbname=etl host=db", "dbname=etl host=db", NOSECRET);
    /* no password */
    EXPECT_REDACT(redact_conninfo, "host=/var/run/postgresql dbname=etl",
                  "host=/var/run/postgresql dbname=etl", NOSECRET);
    EXPECT_REDACT(redact_conninfo, "", "", NOSECRET);
    ASSERT_TRUE(redact_conninfo(NULL) == NULL);
}

TEST(conninfo_uris)
{
    EXPECT_REDACT(redact_conninfo, "postgresql://etl:s3cret@db/etl", "postgresql://etl:***@db/etl",
                  "s3cret");
    EXPECT_REDACT(redact_conninfo, "  postgres://etl:s3cret@db/etl", "  postgres://etl:***@db/etl",
                  "s3cret");
    EXPECT_REDACT(redact_conninfo, "postgresql:///etl?host=/tmp&password=pw",
                  "postgresql:///etl?host=/tmp&password=***", "pw");
    EXPECT_REDACT(redact_conninfo, "postgresql://etl@db/etl", "postgresql://etl@db/etl", NOSECRET);
}

TEST(free_text)
{
    EXPECT_REDACT(redact_text, "connection to \"postgresql://u:pw1@db/etl\" failed: refused",
                  "connection to \"postgresql://u:***@db/etl\" failed: refused", "pw1");
    EXPECT_REDACT(redact_text, "broker URL \"redis://:pw2@h\": scheme must be redis://",
                  "broker URL \"redis://:***@h\": scheme must be redis://", "pw2");
    EXPECT_REDACT(redact_text, "a redis://:x1@h b kafka://u:x2@k c",
                  "a redis://:***@h b kafka://u:***@k c", "x");
    EXPECT_REDACT(redact_text, "bad conninfo: host=db password='a b' user=u",
                  "bad conninfo: host=db password=*** user=u", "a b");
    EXPECT_REDACT(redact_text, "librdkafka: sasl.password=x9, sasl.username=svc",
                  "librdkafka: sasl.password=*** sasl.username=svc", "x9");
    EXPECT_REDACT(redact_text, "opt \"token\" = \"t t\" set", "opt \"token\" = \"t t\" set",
                  NOSECRET); /* "token" is not a word followed by = */
    EXPECT_REDACT(redact_text, "api_key = \"t t\" set", "api_key = *** set", "t t");
    EXPECT_REDACT(redact_text, "nothing to see: host=db port=5432",
                  "nothing to see: host=db port=5432", NOSECRET);
    EXPECT_REDACT(redact_text, "", "", NOSECRET);
    ASSERT_TRUE(redact_text(NULL) == NULL);
}

TEST(known_secrets)
{
    const char *s[] = {"hunter2", "", NULL, "abc", "bcd"};
    char *out = redact_secret_in("pw hunter2, again hunter2; abcd", s, 5);
    ASSERT_STR_EQ(out, "pw ***, again ***; ***");
    mem_free(out);
    out = redact_secret_in("nothing", NULL, 0);
    ASSERT_STR_EQ(out, "nothing");
    mem_free(out);
    out = redact_secret_in("aaaa", s + 3, 1);
    ASSERT_STR_EQ(out, "aaaa");
    mem_free(out);
    ASSERT_TRUE(redact_secret_in(NULL, s, 1) == NULL);
}

/* What libpq itself says about a connection string, redacted. */
static char *libpq_error(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    char *out = redact_error(PQerrorMessage(c), conninfo);
    PQfinish(c);
    return out;
}

TEST(library_errors)
{
    /* libpq quotes the second half of a password with a blank in it */
    char *out = libpq_error("host=/nonexistent password=first second");
    ASSERT_CONTAINS(out, "missing \"=\" after \"***\"");
    ASSERT_TRUE(!strstr(out, "second"));
    mem_free(out);
    /* a / in a password makes libpq read the start of it as the port */
    out = libpq_error("postgresql://u:pa55/w0rd@h/db");
    ASSERT_CONTAINS(out, "invalid integer value \"***\"");
    ASSERT_TRUE(!strstr(out, "pa55") && !strstr(out, "w0rd"));
    mem_free(out);
    /* the raw token of a bad percent-encoding */
    out = libpq_error("postgresql://u:p%zzw@h/db");
    ASSERT_TRUE(!strstr(out, "p%zzw"));
    ASSERT_CONTAINS(out, "invalid percent-encoded token");
    mem_free(out);
    /* the whole URI */
    out = libpq_error("postgresql://u:pw7@[::1:5432/db");
    ASSERT_TRUE(!strstr(out, "pw7"));
    ASSERT_CONTAINS(out, "postgresql://u:***@[::1:5432/db");
    mem_free(out);
    /* an unterminated quote */
    out = libpq_error("host=/nonexistent password='abc");
    ASSERT_CONTAINS(out, "unterminated quoted string");
    mem_free(out);

    /* the forms a secret may be quoted back in */
    out = redact_error("auth failed for p@ss and p%40ss", "postgresql://u:p%40ss@h/db");
    ASSERT_STR_EQ(out, "auth failed for *** and ***");
    mem_free(out);
    out = redact_error("value a b' c rejected", "password='a b\\' c' host=h");
    ASSERT_STR_EQ(out, "value *** rejected");
    mem_free(out);
    out = redact_error("plain message", NULL);
    ASSERT_STR_EQ(out, "plain message");
    mem_free(out);
    out = redact_error("host h: password=zz", "host=h");
    ASSERT_STR_EQ(out, "host h: password=***");
    mem_free(out);
    ASSERT_TRUE(redact_error(NULL, "x") == NULL);
}

TEST(secret_names)
{
    static const char *const yes[] = {
        "password",   "PASSWORD",        "passwd",       "pass",          "sslpassword",
        "api_key",    "apikey",          "access_token", "client_secret", "sasl.password",
        "pwd",        "X-Amz-Signature", "sig",          "auth_token",    "credentials",
        "pass%77ord", "%70assword"};
    static const char *const no[] = {
        "host", "user", "dbname", "port", "sslmode", "application_name", "sv", "x", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!redact_name_is_secret(yes[i], strlen(yes[i])))
            TEST_FAIL_AT("%s should be secret", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (redact_name_is_secret(no[i], strlen(no[i])))
            TEST_FAIL_AT("%s should not be secret", no[i]);
}

int main(void)
{
    RUN(url_passwords);
    RUN(url_tricky_passwords);
    RUN(url_query_parameters);
    RUN(conninfo_words);
    RUN(conninfo_uris);
    RUN(free_text);
    RUN(known_secrets);
    RUN(library_errors);
    RUN(secret_names);
    return TEST_DONE();
}
