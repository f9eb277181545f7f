//! The report's JSON Schema (draft 2020-12, kept in docs/report.schema.json) and the
//! field table the run-report table of docs/metrics.md is generated from. Unit tests
//! check that both list the same field paths, that the table in docs/metrics.md is the
//! generated one (`LOADGEN_BLESS=1 cargo test -p loadgen-engine --lib report` rewrites
//! it), and validate serialized reports against the schema; the integration test
//! `report_schema` validates what every kind of `loadgen run` really writes.

/// JSON Schema (draft 2020-12) of `report.json` as `loadgen run` writes it: the
/// engine's [`Report`](super::Report) plus `config`, `plan` and `generator.io_uring`,
/// which the command line adds. The text of docs/report.schema.json. Optional sections
/// are absent rather than empty: objects and arrays that may be absent require at least
/// one entry. Objects with fixed keys refuse any other (`additionalProperties: false`),
/// so a new field fails validation until it is described here and in [`REPORT_FIELDS`].
pub const REPORT_SCHEMA: &str = include_str!("../../../../docs/report.schema.json");

/// Every field of `report.json` (path, meaning). `[]` marks array elements. Latency
/// fields are `{count, p50, p90, p99, p999, max}` in µs.
pub const REPORT_FIELDS: &[(&str, &str)] = &[
    ("schema_version", "Report format version (3). Bumped when a field changes meaning or is removed."),
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
    ("config", "The run as configured on the command line. Always present."),
    (
        "host",
        "The machine the run ran on, as far as it could be read (written by `loadgen run`; absent in reports from before it).",
    ),
    ("host.hostname", "/proc/sys/kernel/hostname."),
    ("host.kernel", "The kernel release (uname -r)."),
    ("host.cpus", "CPUs this process may run on."),
    ("host.memory_bytes", "MemTotal of /proc/meminfo, bytes."),
    ("host.io_uring", "The io_uring setup flags and opcodes the kernel offers, as `loadgen --version` prints them."),
    (
        "config.protocol",
        "`websocket`, `raw_tcp` (`--raw`: the probe payloads back to back on plain TCP) or `http1` (http:// and https:// targets: HTTP/1.1 keep-alive polling).",
    ),
    ("config.targets", "The target URLs (`--target`, used round robin): ws:// or wss://, http:// or https://."),
    ("config.connections", "`--connections`: connections to open."),
    ("config.connect_rate", "`--connect-rate`: connection starts per second while ramping up."),
    ("config.hold_s", "`--duration`: seconds the connections are held once every one has been started."),
    ("config.workers", "Worker threads (`--workers`; default one per CPU)."),
    (
        "config.traffic",
        "What open connections do, in the engine's words: `Idle`, or `Echo { message_size, rate }` with `rate` `Total(r)` (`--rate`), `PerConnection(r)` (`--rate-per-conn`) or `ClosedLoop` (neither: each connection sends again when its echo arrives).",
    ),
    ("config.on_open_steps", "Number of `--on-open` steps."),
    ("config.ping_interval_s", "`--ping-interval` in seconds; `null` without pings."),
    (
        "config.reply_timeout_s",
        "`--reply-timeout` in seconds: echoes later than this are `late`; a closed loop moves on; on-open waits give up.",
    ),
    ("config.think_time_s", "`--think-time` in seconds (closed loop; 0 otherwise)."),
    (
        "config.coalesce_us",
        "`--coalesce` in microseconds: timers due within this window of the earliest fire together (0: each at its deadline).",
    ),
    (
        "config.reconnect",
        "`--reconnect` policy: `initial_s`, `max_s` (backoff ceilings) and `limit` (attempts per drop, `null`: none); `null` without `--reconnect`.",
    ),
    ("config.reconnect.initial_s", "`--reconnect-initial` in seconds."),
    ("config.reconnect.max_s", "`--reconnect-max` in seconds."),
    ("config.reconnect.limit", "`--reconnect-limit`; `null`: never give up."),
    ("config.deflate", "The permessage-deflate offer sent with the upgrade (`--deflate`); `null` without."),
    (
        "config.tls_resumption",
        "wss:// and https://: whether each worker resumes its TLS sessions (`false` with `--no-tls-resumption`); `null` without TLS.",
    ),
    ("plan", "The pre-flight plan the run was built from (what `loadgen doctor` prints). Always present."),
    ("plan.connections", "Connections held at the peak (`--connections`)."),
    ("plan.workers", "One entry per worker thread."),
    ("plan.workers[].connections", "Connections of this worker (connection k goes to worker k mod workers)."),
    (
        "plan.workers[].ring_connections",
        "Connections per io_uring ring of this worker (its local connection j goes to ring j mod rings).",
    ),
    ("plan.rings", "io_uring rings in total."),
    ("plan.rings_per_worker", "Rings of each worker."),
    (
        "plan.per_ring_capacity",
        "Fixed-file (direct descriptor) slots each ring registers: the most connections one ring holds.",
    ),
    ("plan.nofile", "The RLIMIT_NOFILE the plan assumes (the hard limit; the soft one is raised to it)."),
    (
        "plan.limited_by",
        "The limit that sized the rings, such as `RLIMIT_NOFILE 20000` or `IORING_MAX_FIXED_FILES 1048576`.",
    ),
    (
        "plan.port_range",
        "The ephemeral port range `[low, high]` (`net.ipv4.ip_local_port_range`) the plan counted with.",
    ),
    (
        "plan.usable_ports_per_source",
        "Ephemeral ports per (source address, target) pair: the range minus reserved ports.",
    ),
    ("plan.targets", "One entry per target."),
    ("plan.targets[].addr", "The target's resolved address, `ip:port`."),
    ("plan.targets[].connections", "Connections to it (connection k goes to target k mod targets)."),
    ("plan.targets[].sources", "Source addresses its connections are spread over (round robin)."),
    ("plan.targets[].kernel_chooses_source", "`true`: no bind, the kernel chooses the (single) source address."),
    ("plan.source_mode", "`auto` (loopback sources chosen by the plan) or `explicit` (`--source-addr`)."),
    ("plan.source_addr_count", "Source addresses in use."),
    ("plan.source_addrs", "The source addresses, at most the first 1,024."),
    ("plan.files", "System-wide open files."),
    (
        "plan.files.needed",
        "Files the run adds (sockets of both ends when the target is on this host, rings) plus a margin of 4,096.",
    ),
    ("plan.files.file_max", "`fs.file-max`; `null` when unreadable."),
    ("plan.files.in_use", "Files in use system-wide before the run (`fs.file-nr`); `null` when unreadable."),
    ("plan.memory", "Estimated memory of the run."),
    ("plan.memory.kernel_bytes", "Kernel memory: sockets (both ends when the target is on this host) and ring tables."),
    ("plan.memory.user_bytes", "The generator's user-space memory (message buffers included)."),
    (
        "plan.memory.message_bytes",
        "Of `user_bytes`, the buffers of the messages themselves: copies per connection carrying messages plus the per-worker pools, an upper bound that grows with `--message-size` (0 without messages).",
    ),
    ("plan.memory.both_ends", "`true` when the target is on this host, so kernel memory counts its sockets too."),
    ("plan.memory.available_bytes", "`MemAvailable` from `/proc/meminfo`; `null` when unreadable."),
    ("plan.memory.percent_of_available", "(kernel + user) as a percentage of `available_bytes`; `null` when unknown."),
    ("plan.warnings", "Non-fatal problems (empty when none), each with its fix; also printed before the run."),
    ("plan.warnings[].what", "The limit or resource."),
    ("plan.warnings[].found", "What the host has."),
    ("plan.warnings[].needed", "What the run needs."),
    ("plan.warnings[].fix", "The exact fix (a command where there is one)."),
    ("connections", "Connection counts over the run. Absent when no connection was attempted."),
    ("connections.attempted", "Connection starts submitted, each at its intended time from the schedule."),
    ("connections.established", "Connections whose 101 response was validated (open)."),
    (
        "connections.failed",
        "Attempts that ended before becoming open: connect or handshake errors and timeouts (`errors` says which). Attempts still pending when the run ended are neither established nor failed: they count as `errors.unfinished_at_end`.",
    ),
    (
        "connections.dropped",
        "Open connections that ended without loadgen closing them: reset, closed by the server (close frame or FIN), a protocol or TLS error, a response timeout. A connection loadgen was closing (ramp-down, Ctrl-C) is never a drop.",
    ),
    (
        "connections.dropped_by_cause",
        "`dropped` by cause: `reset`, `server_close` (a close frame; its code in `close_codes`), `eof` (TCP closed without a close frame), `timeout`, `send_error`, `close_timeout` (the server's close was never finished), `http_connection_close` (an HTTP poller got `Connection: close`), `pong_timeout` (a ping unanswered past its program's pong timeout: loadgen gave the connection up, see `pong_timeouts`), or the protocol or TLS error kind. Absent when none.",
    ),
    (
        "connections.close_codes",
        "Close codes of the connections the server dropped with a close frame (`\"1005\"`: the frame had no code). Absent when none.",
    ),
    (
        "connections.refused",
        "Upgrades answered with an HTTP status instead of 101, by status: `count`, `retry_after_count` (how many carried `Retry-After` in delta-seconds), `retry_after_min_s` and `retry_after_max_s` (absent when none did). Absent when none.",
    ),
    (
        "connections.open_at_end",
        "Connections open when the hold ended, before the ramp-down closed them: with no drops, every established connection.",
    ),
    (
        "connections.reconnect_attempts",
        "Reconnect attempts of dropped connections (`--reconnect`, a scenario's `[reconnect]`), also counted in `attempted`. Absent when none.",
    ),
    (
        "connections.reconnected",
        "Dropped connections that were ready again (their time to recover is `latency_us.recover`). Absent when none.",
    ),
    (
        "connections.reconnect_gave_up",
        "Dropped connections whose attempts reached `--reconnect-limit`. Absent when none.",
    ),
    (
        "connections.reconnect_peak_per_s",
        "The most reconnect attempts started in one second of the run (`timeseries[].connections.reconnect_attempts`): the thundering-herd shape of a reconnect wave. With jittered backoff a wave of N drops spreads over the backoff ceiling; without, all N land in one second. Whole run only (absent in `phases`). Absent when no reconnect was attempted.",
    ),
    (
        "connections.reconnected_same_server",
        "Reconnects that landed on the server instance the connection had before, as the server names it in a text message (a scenario's `connection.server`: a JSON pointer, `/worker` of the reference target's `lgready`): sticky sessions kept. Counted once per attempt that learned its instance after an earlier attempt of the same connection did, so when every reconnect learns it, `reconnected_same_server + reconnected_other_server` is `reconnected`. Absent when none.",
    ),
    (
        "connections.reconnected_other_server",
        "Reconnects that landed on another server instance than the connection had before (see `reconnected_same_server`): stickiness lost. Absent when none.",
    ),
    (
        "connections.pong_timeouts",
        "Pings unanswered past their program's pong timeout (a scenario's `Ping` step with a timeout). Each ended its connection without a close handshake, counted as a drop with cause `pong_timeout` (so a reconnect policy applies) and as `errors.pong_timeout`. A pong answers its own ping and every older one; one arriving before the timeout is never counted. Absent when none.",
    ),
    (
        "connections.subprotocol_negotiated",
        "Upgrades whose 101 selected one of the subprotocols offered (a scenario's `connection.subprotocols`, sent as `Sec-WebSocket-Protocol`). A server that selects one not offered fails the handshake (`errors.unrequested_subprotocol`). Absent when none.",
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
        "Intended connection start → every on-open step done (`--on-open`: the subscribe/authenticate/join frames sent and their expected replies received). Only with on-open steps.",
    ),
    (
        "latency_us.message_rtt",
        "Intended send time of a message (carried in its probe payload; for HTTP polls the poll's intended time) → its echo or response received.",
    ),
    (
        "latency_us.message_rtt_corrected",
        "Closed loop only: `message_rtt` corrected for coordinated omission (HdrHistogram's correction with the expected interval between one connection's sends = think time + the median round trip): every sample longer than that interval adds the samples of the sends it held back. Its `count` exceeds the raw one by those synthetic samples.",
    ),
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
        "latency_us.recover",
        "`--reconnect`: a dropped connection's time to recover, from the drop to ready again (backoff, connect, upgrade and on-open steps included).",
    ),
    (
        "latency_us.handshake_closed",
        "Attack upgrades only (a cohort's `HandshakeMode::Stall`, a half-open upgrade whose request is never sent, or `Slow`, a request sent one byte per interval): intended connection start → the server closed the connection (FIN or reset) before answering; each is also `errors.handshake_closed_by_server`. Against a server with a handshake timeout T, the attackers' max stays near T (connect time aside). Upgrades the run's own handshake timeout ended are `errors.handshake_timeout` instead, not timed here.",
    ),
    (
        "latency_us.delivery_critical",
        "As `delivery`, for the pushed messages marked critical alone (the reference target's envelope ends with `\"critical\":true`); they count in `delivery` too. Critical latency beside that of all traffic: a target that lets critical messages wait in line shows it here.",
    ),
    (
        "tls",
        "wss:// and https:// runs: TLS handshakes and the memory of TLS sessions. Absent when no TLS handshake completed.",
    ),
    ("tls.handshakes_full", "TLS handshakes that negotiated a new session."),
    (
        "tls.handshakes_resumed",
        "TLS handshakes that resumed an earlier session of the same worker (TLS 1.3 tickets, TLS 1.2 ids or tickets; each worker has its own cache, so resumption never crosses cores).",
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
    (
        "deflate.contexts",
        "Actual submission time − intended time of every message send, ping and paced send, in µs (same shape as `latency_us`): how late the generator acted. It is contained in the message and ping latencies. Absent when nothing was scheduled.",
    ),
    (
        "deflate.bytes_estimate",
        "`true` when any second was saturated (docs/metrics.md, \"Saturation verdict\"): the numbers of those seconds partly measure loadgen, not the target, and the verdict is `invalid`.",
    ),
    (
        "deflate.bytes_per_connection",
        "One line per rule that fired (`schedule_lag`, `connect_lag`, `cq_overflow`, `buffer_ring_exhausted`) with the seconds it fired in and the worst one. Absent when not saturated.",
    ),
    ("messages", "Data message counts over the run. Absent when nothing was sent or received."),
    (
        "messages.sent",
        "Data messages sent (whole messages, not frames; control frames excluded; on-open steps and a program's sized texts included, its deliberate violations not; HTTP requests for http1).",
    ),
    ("messages.received", "Data messages received."),
    (
        "messages.answered",
        "Echoes (HTTP: responses) that came back within the reply timeout (`--reply-timeout`, default 5 s) of their intended send time. Duplicates are not answers.",
    ),
    ("messages.late", "Echoes that came back after the reply timeout."),
    (
        "messages.unanswered",
        "Probe messages sent that got no echo before their connection ended (HTTP: a request in flight when its connection ended). answered + late + unanswered = probes sent (on-open steps count in `sent` but are not probes).",
    ),
    (
        "messages.not_sent",
        "Messages that fell due but were never sent: no connection was open (`errors.no_open_connection_for_message`), no HTTP poller was idle (`no_idle_connection_for_request`), or polls queued on a connection that ended (`http_poll_not_sent`).",
    ),
    (
        "messages.lost",
        "Sequence numbers never received below the highest one received, counted when the connection ends: per connection for its own echoes (a server that drops an echo), per sender and channel for server pushes (a gap in the stream). A message missing at the very end of a stream has no later number to reveal it: echoes count it as `unanswered`.",
    ),
    (
        "messages.duplicated",
        "Messages received twice (same sender, channel and sequence number, within the last 64 numbers of the stream).",
    ),
    (
        "messages.reordered",
        "Messages received after a later one of the same stream (a duplicate more than 64 numbers late is counted here too).",
    ),
    (
        "messages.pushes_received",
        "Server-pushed probe payloads received (a probe whose sender is not this connection; binary LGPROBE1 payloads, JSON text envelopes `{\"lgprobe\":1,\"channel\",\"seq\",\"sent_us\",\"sender\",...}`, or a scenario's `[messages]`: a server's own JSON fields or text matched by a regex, or loadgen's markers `lgm1.STREAM.SEQ.SENT_US` injected through the system and found in any message): the `latency_us.delivery` samples. Each connection checks sequence numbers per sender for up to 16 interleaved streams (beyond: `errors.push_streams_over_limit`, still timed).",
    ),
    (
        "messages.reply_timeouts",
        "Closed loop: replies that had not come when the reply timeout expired; the connection then sent its next message (the reply, if it comes, counts as `late`).",
    ),
    ("generator", "The generator's own health: whether the numbers measure the target or loadgen. Always present."),
    (
        "generator.cpu_s",
        "CPU time of the loadgen process over the run, user + system (`/proc/self/stat` utime + stime over `_SC_CLK_TCK`). Absent when /proc is unreadable.",
    ),
    ("generator.peak_rss_bytes", "Peak resident memory of the loadgen process (`VmHWM` in `/proc/self/status`)."),
    (
        "generator.bytes_per_connection",
        "(`peak_rss_bytes` − resident memory before the run) / `connections.peak_open`. Includes the fixed receive-buffer pools (16 MB per worker by default), so it is only meaningful for large connection counts; the per-connection marginal cost is measured in docs/benchmarks.md. Absent when no connection was open or memory was not measured.",
    ),
    (
        "generator.schedule_lag_us",
        "Actual submission time − intended time of every connect, send and ping, in µs (same shape as `latency_us`): how late the generator acted. It is contained in every latency above. Absent when nothing was scheduled.",
    ),
    (
        "generator.connect_lag_us",
        "Actual − intended start of every connection (the ramp and reconnects): contained in the connect and handshake latencies. Absent when no connection started.",
    ),
    (
        "generator.saturated",
        "`true` when any second was saturated (see `timeseries[].saturated`): the numbers of those seconds partly measure loadgen, not the target.",
    ),
    ("generator.saturated_seconds", "The seconds judged saturated, in order. Absent when none."),
    (
        "generator.saturation_reasons",
        "`true` when a saturation rule fired in this second: schedule-lag p99 above `--lag-threshold` (1 ms; at most 10% of a fixed per-connection send interval), connect-lag p99 above `--connect-lag-threshold` (10 ms), each judged with at least 20 samples; or `cq_overflow` > 0, or `buffer_ring_exhausted` > 0.",
    ),
    (
        "generator.io_uring",
        "The io_uring setup flags and opcodes the host offered (as `loadgen --version` prints them).",
    ),
    (
        "errors",
        "Errors by kind over the run (the kinds listed below). Absent when none. Beyond 64 distinct kinds in one worker-second the rest count under `other`; none is lost.",
    ),
    (
        "verdict",
        "How the run came out: `pass`, `fail` (a check failed: exit 1) or `invalid` (the generator was saturated, or a check had no data: exit 4; it wins over `fail`). Judged by the run's checks: a scenario's own, or without them the default ones (no connection failed or dropped, no message unanswered, late or lost). Always present.",
    ),
    (
        "checks",
        "Each check and how it came out, in order: `name`, `expr`, `passed`, `observed`, `phase` and, for a failed one, `detail`. Always present (empty when the run had nothing to check).",
    ),
    ("checks[].name", "The check's name: a scenario's `name`, or the expression."),
    ("checks[].expr", "The expression checked over report fields, e.g. `connections.dropped == 0`."),
    ("checks[].passed", "Whether it held (`false` as well when it had no data)."),
    (
        "checks[].observed",
        "The value of its left-hand side in this run. Absent when a metric it needs was not measured: the check proves nothing and the run is `invalid`.",
    ),
    (
        "checks[].phase",
        "The part of the run it judges: `run`, the whole run, or the name of one of `phases` (its counts and latencies alone).",
    ),
    (
        "checks[].defence",
        "The target's defence the check proves (a scenario check's `defence`, e.g. `forged tokens refused with 401`): its finding says `defence held` or `defence missing`. Absent for other checks.",
    ),
    (
        "checks[].detail",
        "For a failed check, what failed in a sentence, with the counts by kind (for example the HTTP statuses of refusals), or which metric had no data. Absent when it passed.",
    ),
    (
        "invalid_because",
        "Why the run is invalid: the saturation rules that fired (with their seconds) and the checks without data. Absent when valid.",
    ),
    ("scenario", "The scenario file the run came from (`loadgen run FILE`). Absent for a run from flags."),
    ("scenario.name", "The scenario's `name`."),
    ("scenario.description", "Its `description`."),
    ("scenario.file", "The file, as given on the command line."),
    ("scenario.sets", "The `--set` overrides, in order."),
    ("scenario.target", "Where it ran: the URL, or `embedded MODE` (with the embedded target's URL)."),
    (
        "scenario.target_cpu_s",
        "The embedded target only: CPU seconds its processes (supervisor, workers, HAProxy; not Redis) used from the start of the load to its end, crashed workers included (/proc). Absent for a URL target.",
    ),
    (
        "scenario.target_cpu_s_by_second",
        "The embedded target only: `target_cpu_s` second by second, aligned with `timeseries` (entry k: CPU seconds its processes used in second k, read when the second was collected; `null` for a second without a reading). Divide the seconds of a fan-out by its deliveries for the target's CPU per delivered message.",
    ),
    (
        "faults",
        "The scenario's timeline as it was carried out, in order of time: faults switched, messages published, a worker killed, Redis restarted. Absent without a timeline.",
    ),
    ("faults[].at_s", "When the event was due, seconds from the start of the run."),
    ("faults[].applied_s", "When it was carried out. Absent when the run ended first."),
    ("faults[].action", "`fault_on`, `fault_off`, `publish`, `kill_worker`, `restart_redis`, `http` or `inject`."),
    ("faults[].detail", "What was asked, e.g. `drop-fanout=50` or `100 messages on broadcast`."),
    ("faults[].ok", "Whether the target accepted it (a 2xx answer, or the restart done)."),
    ("faults[].outcome", "The target's answer (status and body) or why it could not be done."),
    (
        "findings",
        "What the run found, for people, most severe first: failed checks, checks without data, timeline events that failed, seconds with drops, the target's own reports (a worker that exited). Scenario runs only; empty when nothing was found.",
    ),
    ("findings[].severity", "`error` (a check failed), `warning` (something to look at) or `info`."),
    ("findings[].title", "What was found, in one line."),
    ("findings[].evidence", "The numbers or lines that show it."),
    ("findings[].from_s", "Start of the seconds it covers (absent: the whole run)."),
    ("findings[].to_s", "End of those seconds."),
    (
        "aborted",
        "A check marked `abort` failed while the run went on, so loadgen stopped it there (`interrupted` is `true`; exit 1): which check and when. Absent when the run was not aborted.",
    ),
    ("aborted.check", "The name of the check that stopped the run."),
    ("aborted.at_s", "The second of the run whose figures failed it (it is judged on each second as it is collected)."),
    ("aborted.observed", "The value of its left-hand side then."),
    ("aborted.detail", "What failed, in a sentence."),
    (
        "phases",
        "The run's named phases (a scenario's `load.phases` and its `hold`), each with the run's counts and latencies over the whole seconds it covers (a second holding a boundary counts in both phases). Percentiles come from the phase's merged histograms. Absent when the run has no phases, and a phase the run never reached is left out.",
    ),
    ("phases[].name", "The phase's name: a `load.phases` entry's `name`, `ramp` (one connect rate), or `hold`."),
    ("phases[].from_s", "Its first second of the run (as `timeseries[].second`)."),
    ("phases[].to_s", "One past its last second. Absent when it lasts to the end of the run."),
    ("phases[].seconds", "Seconds of it that were collected (fewer than `to_s − from_s` when the run ended early)."),
    (
        "phases[].connections",
        "As `connections`, counted within the phase; `open_at_end` is what was open when its last second ended and `peak_open` the most open in it.",
    ),
    ("phases[].latency_us", "As `latency_us`, from the samples taken within the phase."),
    ("phases[].messages", "As `messages`, counted within the phase (`lost` counts when the connection ended)."),
    ("phases[].errors", "As `errors`, within the phase."),
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
    ("timeseries[].connections.dropped", "Open connections dropped (see `connections.dropped`). Absent when 0."),
    (
        "timeseries[].connections.reconnect_attempts",
        "Reconnect attempts of dropped connections started in the second (also in `attempted`): the shape of a reconnect wave. Absent when 0.",
    ),
    ("timeseries[].connections.open", "Connections open at the end of the second (a level, not a delta)."),
    ("timeseries[].connections.peak_open", "Most connections open during the second (sum of the workers' peaks)."),
    ("timeseries[].messages", "Message counts of the second."),
    ("timeseries[].messages.sent", "Data messages sent."),
    ("timeseries[].messages.received", "Data messages received."),
    ("timeseries[].messages.bytes_sent", "WebSocket payload bytes of the messages sent."),
    ("timeseries[].messages.bytes_received", "WebSocket payload bytes of the messages received."),
    ("timeseries[].messages.late", "Echoes back after the reply timeout. Absent when 0."),
    ("timeseries[].messages.lost", "Sequence numbers found missing when connections ended. Absent when 0."),
    (
        "timeseries[].latency_us",
        "Latencies with samples in this second, same metrics and shape as `latency_us`. Absent when none.",
    ),
    ("timeseries[].schedule_lag_us", "Schedule lag in this second. Absent when nothing was scheduled."),
    ("timeseries[].connect_lag_us", "Connect lag in this second. Absent when no connection started."),
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
    (
        "histograms",
        "Whole-run histograms (HdrHistogram, 1 µs to one hour, 3 significant digits) of the metrics that had samples, bucket by bucket: `{count, buckets: [[value_us, samples], ...]}`, each bucket named by the highest value it holds, values increasing, empty buckets left out. Every percentile of the report is the value of the sample of rank ⌈q·count⌉ in it; `loadgen compare` takes percentiles' confidence intervals and the HTML report its percentile spectrum from it. Absent when no metric had samples.",
    ),
    ("histograms.connect", "The whole-run histogram behind `latency_us.connect`."),
    ("histograms.handshake", "The whole-run histogram behind `latency_us.handshake`."),
    ("histograms.ready", "The whole-run histogram behind `latency_us.ready`."),
    ("histograms.message_rtt", "The whole-run histogram behind `latency_us.message_rtt`."),
    ("histograms.ping_rtt", "The whole-run histogram behind `latency_us.ping_rtt`."),
    ("histograms.delivery", "The whole-run histogram behind `latency_us.delivery`."),
    ("histograms.schedule_lag", "The whole-run histogram behind `generator.schedule_lag_us`."),
    ("histograms.tls_handshake", "The whole-run histogram behind `latency_us.tls_handshake`."),
    ("histograms.connect_lag", "The whole-run histogram behind `generator.connect_lag_us`."),
    ("histograms.recover", "The whole-run histogram behind `latency_us.recover`."),
    ("histograms.handshake_closed", "The whole-run histogram behind `latency_us.handshake_closed`."),
    ("histograms.delivery_critical", "The whole-run histogram behind `latency_us.delivery_critical`."),
];
