#!/bin/bash
# The official image's tool of that name (the compose file's health check).
exec java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
    -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties -cp '/opt/kafka/libs/*' \
    kafka.admin.BrokerApiVersionsCommand "$@"
