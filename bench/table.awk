# bench/table.awk — the markdown table of bench/bench.sh from its results
# file (read twice: the first pass finds each broker's wide throughput and
# each workload's figure on the empty metastore). Variables: lim (the fork
# limit /s), tck (clock ticks /s), ncpu.
function ms(x) { return x < 0 ? "-" : sprintf("%.1f", x) }
function pair(a, b) { return (a < 0 && b < 0) ? "-" : ms(a) " / " ms(b) }
function per1k(t) { return sprintf("%.3f", t / tck / n * 1000) }
FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; pass++; next }
$4 == "TIMEOUT" {
    if (pass == 2) printf "| %s | %s | %s | timeout | | | | | | | | | | | | | | |\n", $3, $1, $2
    next
}
{
    n = $(c["tasks"]); secs = $(c["secs"]); tps = secs > 0 ? n / secs : 0
    key = $(c["broker"]) SUBSEP $(c["phase"])
    if (pass == 1) {
        if ($(c["workload"]) == "wide") wide[key] = tps
        if ($(c["phase"]) == "empty") empty[$(c["broker"]) SUBSEP $(c["workload"])] = tps
        next
    }
    if (!header++) {
        print "| phase | broker | workload | tasks | tasks/s | % of fork limit | vs wide | vs empty | start lat p50 / p99 ms | ready->queued p50 / p99 ms | trigger->1st start ms | cron: worst created / 1st started ms after the minute | CPU s/1k: sched / workers / forks / PG / broker | CPU busy | commits / task | WAL syncs / task | PG stmts / task (top-level) | RSS MB sched / worker |"
        print "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    }
    w = $(c["workload"])
    vw = (w != "wide" && wide[key] > 0) ? sprintf("%.0f%%", 100 * tps / wide[key]) : "-"
    ek = $(c["broker"]) SUBSEP w
    ve = ($(c["phase"]) != "empty" && empty[ek] > 0) ? sprintf("%+.0f%%", 100 * (tps / empty[ek] - 1)) : "-"
    cpu = $(c["sched_t"]) + $(c["workers_t"]) + $(c["forks_t"]) + $(c["pg_t"]) + $(c["broker_t"])
    busy = secs > 0 ? sprintf("%.0f%%", 100 * cpu / tck / (secs * ncpu)) : "-"
    cron = $(c["cron_created_max"]) < 0 ? "-" : sprintf("%.0f / %.0f (p50 %.0f / %.0f)", $(c["cron_created_max"]), $(c["cron_started_max"]), $(c["cron_created_p50"]), $(c["cron_started_p50"]))
    rss = sprintf("%.1f / %.1f", $(c["sched_hwm"]) / 1024, $(c["worker_hwm"]) / 1024)
    printf "| %s | %s | %s | %d | %.0f | %.0f%% | %s | %s | %s | %s | %.0f | %s | %s / %s / %s / %s / %s | %s | %.2f | %.2f | %.1f (%.1f) | %s |\n",
        $(c["phase"]), $(c["broker"]), w, n, tps, 100 * tps / lim, vw, ve,
        pair($(c["lat_p50"]), $(c["lat_p99"])), pair($(c["rq_p50"]), $(c["rq_p99"])), $(c["first_ms"]), cron,
        per1k($(c["sched_t"])), per1k($(c["workers_t"])), per1k($(c["forks_t"])), per1k($(c["pg_t"])), per1k($(c["broker_t"])),
        busy, $(c["commits"]) / n, $(c["wal_syncs"]) / n, $(c["stmts"]) / n, $(c["top_stmts"]) / n, rss
}
