/* kafka_settings — what a Kafka client of dagq is built from: the kafka://
 * URL, the topic names and the librdkafka properties the user gave
 * (internal to common/queue/).
 *
 * Names. A worker group `g` is the topic `<prefix>g` (prefix
 * queue_conf.kafka_topic_prefix, default "dagq.") and the consumer group of
 * the same name. Dead letters go to the topic `<prefix>dead-letter`, so no
 * worker group may be called "dead-letter".
 *
 * Properties are applied in this order, later winning: dagq's defaults
 * (kafka_client.c and each kind of client), environment variables
 * DAGQ_KAFKA_<NAME> (NAME upper case with '.' written '_', e.g.
 * DAGQ_KAFKA_SECURITY_PROTOCOL for security.protocol; DAGQ_KAFKA_CONF,
 * _TOPIC_PREFIX, _PARTITIONS and _REPLICATION are dagq's own options, not
 * properties), queue_conf.kafka_props ("key=value", from repeated
 * --kafka-conf), then what dagq's correctness depends on. Values are never
 * logged (they may be passwords). */
#ifndef DAGQ_KAFKA_SETTINGS_H
#define DAGQ_KAFKA_SETTINGS_H

#include "queue.h"

#define KQ_DEAD_LETTER "dead-letter"

typedef struct kq_prop {
    char *key, *value;
    char *origin; /* "DAGQ_KAFKA_X" or "--kafka-conf": for error messages */
} kq_prop;

typedef struct kq_settings {
    char *bootstrap; /* from the URL */
    char *prefix;
    char *client_name;
    int partitions, replication;
    kq_prop *props;
    int n_props;
} kq_settings;

/* Fills *s from conf and the environment: 0, or QUEUE_EINVAL with the reason
 * (a bad URL, a property that is not key=value) and *s holding nothing. On 0
 * free with kq_settings__free. */
int kq_settings__init(kq_settings *s, const queue_conf *conf, char *errbuf, size_t errlen);

/* A deep copy of *src into *dst; free with kq_settings__free. */
void kq_settings__copy(kq_settings *dst, const kq_settings *src);

/* Frees what *s holds and zeroes it. */
void kq_settings__free(kq_settings *s);

/* queue__ops.url_check. */
int kq_settings__url_check(const char *url, char *errbuf, size_t errlen);

/* The topic of group, valid for Kafka (1-249 of [A-Za-z0-9._-], not "." or
 * ".."), into *out (caller frees with mem_free); QUEUE_EINVAL for an invalid
 * one and for the reserved group "dead-letter". */
int kq_settings__topic_name(const kq_settings *s, const char *group, char **out, char *errbuf,
                            size_t errlen);

#endif
