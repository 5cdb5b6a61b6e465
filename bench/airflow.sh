#!/bin/sh
# make bench-airflow: the same wide and chain workloads on Apache Airflow
# (LocalExecutor, a private PostgreSQL like bench/run.sh's); the work is done
# by bench/airflow_bench.sh (bash).
exec bash "$(dirname "$0")/airflow_bench.sh" "$@"
