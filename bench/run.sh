#!/bin/sh
# make bench: dagq's throughput, latency and cost next to the machine's own
# fork limit, on Redis and on Kafka (bench/bench.sh), then dagq-web at size
# (bench/web_bench.sh: the grid, runs and task lists, rendering in headless
# Chromium). See BENCHMARKS.md for the figures and what they mean.
# Both run PostgreSQL with its stock durability unless BENCH_DURABILITY=off.
export PG_DURABILITY=${BENCH_DURABILITY:-stock}
bash "$(dirname "$0")/bench.sh" "$@" || exit 1
exec bash "$(dirname "$0")/web_bench.sh"
