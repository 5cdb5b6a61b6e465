#include "daemon.h"

queue_conf daemon_queue_conf(const daemon_opts *o, const char *client_name)
{
    queue_conf qc = {
        .broker_url = o->broker_url,
        .client_name = client_name,
        .redis_prefix = o->redis_prefix,
        .kafka_topic_prefix = o->kafka_topic_prefix,
        .kafka_partitions = (int)o->kafka_partitions,
        .kafka_replication = (int)o->kafka_replication,
        .kafka_props = o->kafka_conf.items,
        .n_kafka_props = o->kafka_conf.n,
        .redis_tls_ca = o->redis_tls_ca,
        .redis_tls_cert = o->redis_tls_cert,
        .redis_tls_key = o->redis_tls_key,
        .redis_tls_server_name = o->redis_tls_server_name,
    };
    return qc;
}
