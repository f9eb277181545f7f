//! permessage-deflate offered by the engine: negotiated, echoed byte-exact, and its
//! contexts accounted (pooled per core without context takeover).

use super::*;

fn deflate_config(takeover: bool) -> loadgen_proto::DeflateConfig {
    loadgen_proto::DeflateConfig {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        ..loadgen_proto::DeflateConfig::default()
    }
}

#[test]
fn deflate_echo_is_timed_and_its_contexts_are_reported() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 10, 600, Traffic::Echo { message_size: 2_000, rate: MessageRate::ClosedLoop });
    cfg.deflate = Some(deflate_config(false));
    let out = go(&cfg);
    let m = &out.stats;
    assert_eq!((m.totals.established, m.totals.failed), (10, 0), "{:?}", m.errors);
    assert!(m.errors.is_empty(), "compressed frames decoded on both sides: {:?}", m.errors);
    assert!(m.totals.messages_received > 50, "echoes flowed: {}", m.totals.messages_received);
    assert_eq!(m.histogram(Metric::MessageRtt).len(), m.totals.messages_received, "every echo matched its probe");
    assert_eq!(server.messages.load(Ordering::Relaxed), m.totals.messages_sent, "the server inflated every message");
    let mem = out.memory;
    assert!(mem.deflate_contexts >= 2, "negotiated contexts exist: {mem:?}");
    let per_context = mem.deflate_bytes / mem.deflate_contexts;
    assert!((30_000..400_000).contains(&per_context), "zlib-sized contexts: {per_context} B");
}

#[test]
fn idle_connections_without_context_takeover_share_pooled_contexts() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 40, 300, Traffic::Idle);
    // 10 ms apart: few handshakes overlap even when the test server is slow.
    cfg.connect_rate = 100.0;
    cfg.deflate = Some(deflate_config(false));
    let pooled = go(&cfg);
    assert_eq!(pooled.stats.totals.established, 40, "{:?}", pooled.stats.errors);
    // Parked connections hold no context: the pool holds one pair per `Client` that was
    // live at once (handshakes in flight together), far fewer than one per connection.
    assert!(pooled.memory.deflate_contexts <= 40, "pooled: {:?}", pooled.memory);

    cfg.deflate = Some(deflate_config(true));
    let own = go(&cfg);
    assert_eq!(own.stats.totals.established, 40, "{:?}", own.stats.errors);
    // With context takeover each connection keeps its compressor and decompressor.
    assert!(own.memory.deflate_contexts >= 80, "one pair per connection: {:?}", own.memory);
    assert!(own.memory.deflate_bytes > 40 * 300_000, "{:?}", own.memory);
}
