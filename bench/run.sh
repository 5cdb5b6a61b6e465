#!/bin/sh
# make bench: dagq's throughput, latency and cost next to the machine's own
# fork limit, on Redis and on Kafka. The work is done by bench/bench.sh
# (bash); see BENCHMARKS.md for the figures and what they mean.
exec bash "$(dirname "$0")/bench.sh" "$@"
