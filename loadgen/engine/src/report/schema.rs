//! The report's JSON Schema (draft 2020-12) and the field table docs/metrics.md is
//! generated from. A unit test walks the schema and checks that both list the same
//! field paths, and validates serialized reports against the schema.

/// JSON Schema (draft 2020-12) of `report.json`. Optional sections are absent rather
/// than empty: objects and arrays that may be absent require at least one entry.
pub const REPORT_SCHEMA: &str = include_str!("../../../../docs/report.schema.json");

/// Every field of `report.json` (path, meaning). `[]` marks array elements. Latency
/// fields are `{count, p50, p90, p99, p999, max}` in µs.
pub const REPORT_FIELDS: &[(&str, &str)] = &[
    ("schema_version", "Report format version (2). Bumped when a field changes meaning or is removed."),
    ("loadgen_version", "Version of loadgen that wrote the report."),
    (
        "started_unix_s",
        "Wall-clock start of the run, Unix seconds: the zero of the run clock and of `timeseries[].second`.",
    ),
    ("duration_s", "Length of the run in seconds, up to the end of collection (the last, partial second included)."),
    (
        "interrupted",
        "`true` when the run stopped early (Ctrl-C, a fatal error). The report is still complete for the part that ran: every section covers it.",
    ),
    ("connections", "Connection counts over the run. Absent when no connection was attempted."),
    ("connections.attempted", "Connection starts submitted, each at its intended time from the schedule."),
    ("connections.established", "Connections whose 101 response was validated (open)."),
    (
        "connections.failed",
        "Attempts that ended before becoming open: connect or handshake errors and timeouts (`errors` says which).",
    ),
    (
        "connections.peak_open",
        "Most connections open at once: the largest per-second sum of each worker's peak. One-second resolution; an upper bound when connections churn within a second.",
    ),
    (
        "latency_us",
        "Latency in µs, `{count, p50, p90, p99, p999, max}` per metric, percentiles of the merged histograms of all workers. Every latency starts at the *intended* time of the action, so generator lateness and target stalls are both included (no coordinated omission). A metric without samples is absent; the section is absent when none has samples.",
    ),
    ("latency_us.connect", "Intended connection start → TCP connection established."),
    ("latency_us.handshake", "Intended connection start → 101 response received and validated."),
    (
        "latency_us.ready",
        "Intended connection start → the connection is ready for the scenario's traffic (its setup exchange, such as a subscription, acknowledged).",
    ),
    ("latency_us.message_rtt", "Intended send time of a message → its echo or response received."),
    (
        "latency_us.ping_rtt",
        "Intended ping time (carried in the ping payload) → matching pong received. Unsolicited pongs are not timed.",
    ),
    (
        "latency_us.delivery",
        "Timestamp in the probe payload (the publisher's intended send time, Unix µs) → message received by this subscriber: end-to-end fan-out latency. Publisher and subscriber clocks must agree when they are different hosts.",
    ),
    (
        "latency_us.tls_handshake",
        "wss:// and https:// only: intended connection start → TLS handshake complete (the upgrade or first request goes out right after).",
    ),
    (
        "tls",
        "wss:// and https:// runs: TLS handshakes and the memory of TLS sessions. Absent when no TLS handshake completed.",
    ),
    ("tls.handshakes_full", "TLS handshakes that negotiated a new session."),
    (
        "tls.handshakes_resumed",
        "TLS handshakes that resumed an earlier session of the same worker (TLS 1.3 tickets, TLS 1.2 ids or tickets).",
    ),
    ("tls.sessions_held", "Open connections with a TLS session when the hold ended (when memory was sampled)."),
    (
        "tls.bytes_per_session",
        "Memory of one held TLS session: its slab box plus rustls's heap state (measured per version by loadgen-tls's counting-allocator test) plus any unfinished record, averaged over `sessions_held`. Included in `generator.bytes_per_connection`.",
    ),
    (
        "deflate",
        "Runs with `--deflate`: permessage-deflate contexts alive when the hold ended (pooled per core without context takeover, one pair per connection with it). Absent when none was negotiated.",
    ),
    ("deflate.contexts", "Compressors plus decompressors alive (in use or pooled)."),
    (
        "deflate.bytes_estimate",
        "Their memory, from zlib's documented sizes for the negotiated window: a compressor 2^(w+2) + 2^(memLevel+9) bytes, a decompressor 2^w + 7 KB.",
    ),
    ("deflate.bytes_per_connection", "`bytes_estimate` / `connections.peak_open`."),
    ("messages", "Data message counts over the run. Absent when nothing was sent or received."),
    ("messages.sent", "Data messages sent (whole messages, not frames; control frames excluded)."),
    ("messages.received", "Data messages received."),
    ("generator", "The generator's own health: whether the numbers measure the target or loadgen. Always present."),
    (
        "generator.cpu_s",
        "CPU time of the loadgen process over the run, user + system (`/proc/self/stat` utime + stime over `_SC_CLK_TCK`). Absent when /proc is unreadable.",
    ),
    ("generator.peak_rss_bytes", "Peak resident memory of the loadgen process (`VmHWM` in `/proc/self/status`)."),
    (
        "generator.bytes_per_connection",
        "(`peak_rss_bytes` − resident memory before the run) / `connections.peak_open`. Absent when no connection was open or memory was not measured.",
    ),
    (
        "generator.schedule_lag_us",
        "Actual submission time − intended time of every connect and send, in µs (same shape as `latency_us`): how late the generator acted. It is contained in every latency above. Absent when nothing was scheduled.",
    ),
    (
        "generator.saturated",
        "`true` when any second was saturated (see `timeseries[].saturated`): the numbers of those seconds partly measure loadgen, not the target.",
    ),
    (
        "generator.saturation_reasons",
        "One line per cause (`schedule_lag`, `cq_overflow`, `buffer_ring_exhausted`) with the seconds affected and the worst or first one. Absent when not saturated.",
    ),
    (
        "errors",
        "Errors by kind over the run (the kinds listed below). Absent when none. Beyond 64 distinct kinds in one worker-second the rest count under `other`; none is lost.",
    ),
    (
        "timeseries",
        "One object per second of the run, in order, gaps included. Counts are deltas within the second unless stated. Absent when no second completed.",
    ),
    ("timeseries[].second", "Second of the run from 0: covers `[second, second + 1)` s after `started_unix_s`."),
    ("timeseries[].connections", "Connection counts of the second."),
    ("timeseries[].connections.attempted", "Connection starts submitted."),
    ("timeseries[].connections.established", "Connections that became open."),
    ("timeseries[].connections.failed", "Attempts that failed before becoming open."),
    (
        "timeseries[].connections.closed",
        "Open connections that ended, for any reason (`errors` says which were errors).",
    ),
    ("timeseries[].connections.open", "Connections open at the end of the second (a level, not a delta)."),
    ("timeseries[].connections.peak_open", "Most connections open during the second (sum of the workers' peaks)."),
    ("timeseries[].messages", "Message counts of the second."),
    ("timeseries[].messages.sent", "Data messages sent."),
    ("timeseries[].messages.received", "Data messages received."),
    ("timeseries[].messages.bytes_sent", "WebSocket payload bytes of the messages sent."),
    ("timeseries[].messages.bytes_received", "WebSocket payload bytes of the messages received."),
    (
        "timeseries[].latency_us",
        "Latencies with samples in this second, same metrics and shape as `latency_us`. Absent when none.",
    ),
    ("timeseries[].schedule_lag_us", "Schedule lag in this second. Absent when nothing was scheduled."),
    (
        "timeseries[].cq_overflow",
        "Completion-queue overflows the kernel reported in this second (completions the kernel could not post at once). Absent when 0.",
    ),
    (
        "timeseries[].buffer_ring_exhausted",
        "Receives that found the provided-buffer ring empty (`-ENOBUFS`) in this second. Absent when 0.",
    ),
    (
        "timeseries[].saturated",
        "`true` when this second's schedule-lag p99 exceeds 1 ms (or 10% of the send interval when connections send at a fixed pace, whichever is smaller), or `cq_overflow` > 0, or `buffer_ring_exhausted` > 0.",
    ),
    ("timeseries[].saturation_reasons", "Why the second is saturated, one line per cause. Absent when not saturated."),
    ("timeseries[].errors", "Errors by kind in this second. Absent when none."),
];
