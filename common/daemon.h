/* daemon — what dagq-scheduler and dagq-worker share in their configuration:
 * the metastore, the broker, the HTTP endpoints (http.h) and the log level. Each
 * program splices DAEMON_OPTIONS(&its daemon_opts) into its own option
 * table (config.h) and builds its queue_conf with daemon_queue_conf. */
#ifndef DAGQ_DAEMON_H
#define DAGQ_DAEMON_H

#include "config.h"
#include "http.h"
#include "queue.h"

typedef struct daemon_opts {
    char *database_url, *broker_url, *log_level, *redis_prefix, *kafka_topic_prefix;
    char *redis_tls_ca, *redis_tls_cert, *redis_tls_key, *redis_tls_server_name, *http_bind;
    long long kafka_partitions, kafka_replication, http_port, health_timeout;
    config_list kafka_conf;
} daemon_opts;

/* The option rows (config_option initialisers) for the fields of *o. */
#define DAEMON_OPTIONS(o)                                                                          \
    {"database-url", CONFIG_SECRET, NULL,                                                          \
     "PostgreSQL conninfo or URI of the metastore (unset: libpq defaults, PGHOST...)",             \
     &(o)->database_url},                                                                          \
        {"broker-url", CONFIG_SECRET, "redis://127.0.0.1:6379/0",                                  \
         "queue broker: redis[s]://[[user]:password@]host:port[/db][?tls-ca=FILE...] or "          \
         "kafka://host:port[,host:port...]",                                                       \
         &(o)->broker_url},                                                                        \
        {"redis-prefix", CONFIG_STRING, "dagq:", "Redis key prefix", &(o)->redis_prefix},          \
        {"redis-tls-ca", CONFIG_STRING, NULL,                                                      \
         "rediss://: CA certificates (PEM) the server's certificate must chain to (unset: the "    \
         "system's)",                                                                              \
         &(o)->redis_tls_ca},                                                                      \
        {"redis-tls-cert", CONFIG_STRING, NULL,                                                    \
         "rediss://: client certificate (PEM), with --redis-tls-key", &(o)->redis_tls_cert},       \
        {"redis-tls-key", CONFIG_STRING, NULL, "rediss://: client private key (PEM)",              \
         &(o)->redis_tls_key},                                                                     \
        {"redis-tls-server-name", CONFIG_STRING, NULL,                                             \
         "rediss://: the name the server's certificate must carry (unset: the URL's host)",        \
         &(o)->redis_tls_server_name},                                                             \
        {"kafka-topic-prefix", CONFIG_STRING, "dagq.",                                             \
         "Kafka topic prefix (topic = prefix + group)", &(o)->kafka_topic_prefix},                 \
        {"kafka-partitions",                                                                       \
         CONFIG_INT,                                                                               \
         "6",                                                                                      \
         "partitions of Kafka topics created when missing",                                        \
         &(o)->kafka_partitions,                                                                   \
         1,                                                                                        \
         10000},                                                                                   \
        {"kafka-replication",     CONFIG_INT, "1", "replication factor of created Kafka topics",   \
         &(o)->kafka_replication, 1,          100},                                                \
        {"kafka-conf", CONFIG_LIST, NULL,                                                          \
         "librdkafka property KEY=VALUE passed through (repeatable; env: comma-separated, or "     \
         "DAGQ_KAFKA_<PROPERTY>)",                                                                 \
         &(o)->kafka_conf},                                                                        \
        {"http-port",                                                                              \
         CONFIG_INT,                                                                               \
         NULL,                                                                                     \
         "serve /healthz and /metrics on this port (off when unset)",                              \
         &(o)->http_port,                                                                          \
         0,                                                                                        \
         65535},                                                                                   \
        {"http-bind", CONFIG_STRING, HTTP_BIND_DEFAULT,                                            \
         "address of --http-port: 0.0.0.0 every IPv4 address (containers), :: every address, "     \
         "127.0.0.1 or ::1 this machine only, or one of its addresses",                            \
         &(o)->http_bind},                                                                         \
        {"health-timeout",                                                                         \
         CONFIG_INT,                                                                               \
         "30",                                                                                     \
         "seconds without the database or the broker after which /healthz fails",                  \
         &(o)->health_timeout,                                                                     \
         1,                                                                                        \
         86400},                                                                                   \
    {                                                                                              \
        "log-level", CONFIG_STRING, "info", "debug, info, warn or error", &(o)->log_level          \
    }

/* The broker settings of *o as a queue_conf; the strings stay *o's. */
queue_conf daemon_queue_conf(const daemon_opts *o, const char *client_name);

#endif
