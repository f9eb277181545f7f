//! Heap held per established TLS client session, measured with a counting global
//! allocator: the bytes freed when an idle session (handshake done, tickets received,
//! nothing buffered) is dropped. Also counts allocations per record in steady state.
//!
//! One test function: the allocator's counters are process-wide, so nothing else may
//! run concurrently in this binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use loadgen_tls::session::{IDLE_HEAP_ESTIMATE_TLS12, IDLE_HEAP_ESTIMATE_TLS13};
use loadgen_tls::{ProtocolVersion, TlsClientConfig, TlsServerConfig, TlsServerSession, TlsSession, TlsVersions};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE_BYTES.load(Ordering::SeqCst)
}

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// The generous bound asserted for one idle session's heap.
const BOUND: usize = 64 * 1024;
const RECORDS: usize = 64;

/// Handshakes `client` with a fresh server session until nothing is in flight.
fn establish(mut client: TlsSession, server: &TlsServerConfig) -> (TlsSession, TlsServerSession) {
    let mut server = TlsServerSession::new(server).unwrap();
    let (mut to_server, mut to_client, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    client.poll_transmit(&mut to_server).unwrap();
    for _ in 0..16 {
        server.receive(&to_server, &mut plain).unwrap();
        to_server.clear();
        server.poll_transmit(&mut to_client).unwrap();
        client.receive(&mut to_client, &mut to_server, &mut plain).unwrap();
        let idle = to_server.is_empty() && to_client.is_empty();
        to_client.clear();
        if client.is_handshake_complete() && server.is_handshake_complete() && idle {
            return (client, server);
        }
    }
    panic!("no handshake");
}

struct Measured {
    suite: Option<rustls::CipherSuite>,
    client_heap: usize,
    server_heap: usize,
}

/// Heap freed by dropping an idle established client (and, separately, its server).
fn measure(config: &TlsClientConfig, server: &TlsServerConfig, version: ProtocolVersion, resumed: bool) -> Measured {
    let (client, server_session) = establish(TlsSession::for_target(config).unwrap(), server);
    assert_eq!(client.protocol_version(), Some(version));
    assert_eq!(client.is_resumed(), resumed);
    assert_eq!(client.incoming_capacity(), 0, "idle: no receive buffer");
    let estimate = client.heap_bytes_estimate();
    let suite = client.cipher_suite();

    let before = live();
    drop(client);
    let client_heap = (before - live()) as usize;
    let before = live();
    drop(server_session);
    let server_heap = (before - live()) as usize;

    assert!(client_heap > 0);
    assert!(client_heap <= BOUND, "{client_heap} B per idle session exceeds {BOUND} B");
    assert!(estimate >= client_heap, "heap_bytes_estimate {estimate} B < measured {client_heap} B");
    assert!(estimate <= 2 * client_heap, "heap_bytes_estimate {estimate} B is stale (measured {client_heap} B)");
    Measured { suite, client_heap, server_heap }
}

/// Allocations the client makes per record sending and receiving `RECORDS` records of
/// `size` bytes, with warmed-up caller buffers.
fn allocations_per_record(config: &TlsClientConfig, server: &TlsServerConfig, size: usize) -> (f64, f64) {
    let (mut client, mut server) = establish(TlsSession::for_target(config).unwrap(), server);
    let data = vec![0x5Au8; size];
    let mut out = Vec::with_capacity(RECORDS * (size + 64));
    let mut plain = Vec::with_capacity(RECORDS * size);
    let mut scratch = Vec::new();

    let start = allocations();
    for _ in 0..RECORDS {
        client.send(&data, &mut out).unwrap();
    }
    let send = (allocations() - start) as f64 / RECORDS as f64;

    let mut records = Vec::new();
    for _ in 0..RECORDS {
        server.send(&data, &mut records).unwrap();
    }
    let start = allocations();
    client.receive(&mut records, &mut scratch, &mut plain).unwrap();
    let receive = (allocations() - start) as f64 / RECORDS as f64;
    assert_eq!(plain.len(), RECORDS * size);
    (send, receive)
}

#[test]
fn heap_per_idle_session() {
    let server13 = TlsServerConfig::self_signed(["localhost"]).unwrap();
    let server12 = TlsServerConfig::self_signed(["localhost"]).unwrap().with_versions(TlsVersions::Tls12Only).unwrap();
    let config13 = TlsClientConfig::builder().server_name("localhost").ca_pem(server13.cert_pem()).build().unwrap();
    let config12 = TlsClientConfig::builder().server_name("localhost").ca_pem(server12.cert_pem()).build().unwrap();

    // Warm-up: lazily initialised statics, and a first session per config (the next one
    // with the same config resumes).
    establish(TlsSession::for_target(&config13).unwrap(), &server13);
    establish(TlsSession::for_target(&config12).unwrap(), &server12);

    let tls13 = measure(&config13, &server13, ProtocolVersion::TLSv1_3, true);
    let tls12 = measure(&config12, &server12, ProtocolVersion::TLSv1_2, true);
    let tls13_full = measure(&config13.for_worker(), &server13, ProtocolVersion::TLSv1_3, false);
    let tls12_full = measure(&config12.for_worker(), &server12, ProtocolVersion::TLSv1_2, false);
    const { assert!(IDLE_HEAP_ESTIMATE_TLS13 <= BOUND && IDLE_HEAP_ESTIMATE_TLS12 <= BOUND) };

    // While waiting for the server's first flight (ClientHello sent: key shares held).
    let mut waiting = TlsSession::for_target(&config13.for_worker()).unwrap();
    waiting.poll_transmit(&mut Vec::new()).unwrap();
    let estimate = waiting.heap_bytes_estimate();
    let before = live();
    drop(waiting);
    let handshaking = (before - live()) as usize;
    assert!(handshaking <= estimate, "handshaking session {handshaking} B > estimate {estimate} B");

    let (send13, receive13) = allocations_per_record(&config13, &server13, 1000);
    let (send12, receive12) = allocations_per_record(&config12, &server12, 1000);
    // Ours add none; rustls 0.23 allocates one buffer per record each way.
    for per_record in [send13, receive13, send12, receive12] {
        assert!(per_record <= 1.1, "{per_record} allocations per record");
    }

    println!("size_of::<TlsSession>() = {} B", std::mem::size_of::<TlsSession>());
    println!(
        "idle client session heap: TLS 1.3 {} B (full handshake {} B) {:?}, TLS 1.2 {} B (full handshake {} B) {:?}",
        tls13.client_heap, tls13_full.client_heap, tls13.suite, tls12.client_heap, tls12_full.client_heap, tls12.suite
    );
    println!("client session heap after sending ClientHello: {handshaking} B");
    println!(
        "idle server session heap (rustls buffered): TLS 1.3 {} B, TLS 1.2 {} B",
        tls13.server_heap, tls12.server_heap
    );
    println!(
        "client allocations per 1000 B record: TLS 1.3 send {send13:.2} receive {receive13:.2}, \
         TLS 1.2 send {send12:.2} receive {receive12:.2}"
    );
}
