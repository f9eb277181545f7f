//! io_uring on real loopback sockets: direct descriptors, connect through the ring,
//! multishot receive into a provided-buffer ring, and buffer-ring exhaustion.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

use io_uring::{cqueue, opcode, squeue, types};

use super::buf_ring::BufRing;
use super::probe::Capabilities;
use super::ring::{Ring, RingConfig};

fn ring(fixed_files: u32) -> Ring {
    let caps = Capabilities::probe().unwrap();
    Ring::new(RingConfig { sq_entries: 64, cq_entries: 256, fixed_files }, &caps).unwrap()
}

fn submit_one(ring: &mut Ring, sqe: squeue::Entry) -> cqueue::Entry {
    // SAFETY: the entries built in these tests reference no memory that could be freed
    // before completion (addresses are leaked or outlive the wait below).
    unsafe { ring.uring.submission().push(&sqe).unwrap() };
    ring.uring.submit_and_wait(1).unwrap();
    ring.uring.completion().next().unwrap()
}

fn sockaddr(addr: SocketAddr) -> Box<libc::sockaddr_in> {
    let SocketAddr::V4(v4) = addr else { panic!("ipv4 only in this test") };
    Box::new(libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    })
}

/// Opens a direct-descriptor socket in `slot` and connects it to `addr`.
fn connect_direct(ring: &mut Ring, slot: u32, addr: SocketAddr) {
    let dest = types::DestinationSlot::try_from_slot_target(slot).unwrap();
    let sqe = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).file_index(Some(dest)).build();
    let cqe = submit_one(ring, sqe.user_data(1));
    assert_eq!(cqe.result(), 0, "a direct socket returns 0, not a process fd");
    let sa = sockaddr(addr);
    let sqe = opcode::Connect::new(
        types::Fixed(slot),
        (&*sa as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as u32,
    )
    .build();
    let cqe = submit_one(ring, sqe.user_data(2));
    assert_eq!(cqe.result(), 0, "connect through the ring");
}

#[test]
fn direct_descriptors_connect_and_send() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut ring = ring(64);
    for slot in 0..32 {
        connect_direct(&mut ring, slot, addr);
    }
    let mut peers: Vec<_> = (0..32).map(|_| listener.accept().unwrap().0).collect();
    // Send through slot 5 and read it on the accepted side.
    let msg: &'static [u8] = b"hello from a direct descriptor";
    let sqe = opcode::Send::new(types::Fixed(5), msg.as_ptr(), msg.len() as u32).build();
    let cqe = submit_one(&mut ring, sqe.user_data(3));
    assert_eq!(cqe.result(), msg.len() as i32);
    let mut got = vec![0u8; msg.len()];
    // Which accepted socket is slot 5 is not known; exactly one has the bytes.
    let mut found = 0;
    for p in &mut peers {
        p.set_nonblocking(true).unwrap();
        if p.read_exact(&mut got).is_ok() {
            assert_eq!(got, msg);
            found += 1;
        }
    }
    assert_eq!(found, 1);
}

#[test]
fn multishot_receive_into_a_buffer_ring_and_exhaustion() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut ring = ring(4);
    let idx = ring.add_buf_ring(BufRing::new(7, 2, 16)).unwrap();
    connect_direct(&mut ring, 0, addr);
    let (mut peer, _) = listener.accept().unwrap();
    peer.write_all(&[b'x'; 40]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let arm = || opcode::RecvMulti::new(types::Fixed(0), 7).build().user_data(9);
    // SAFETY: the buffer group is registered and outlives the request.
    unsafe { ring.uring.submission().push(&arm()).unwrap() };
    let mut received = Vec::new();
    let mut enobufs = 0;
    let mut more = true;
    while more {
        ring.uring.submit_and_wait(1).unwrap();
        let cqes: Vec<cqueue::Entry> = ring.uring.completion().collect();
        for cqe in cqes {
            more = cqueue::more(cqe.flags());
            if cqe.result() == -libc::ENOBUFS {
                enobufs += 1;
                continue;
            }
            assert!(cqe.result() > 0, "recv: {}", cqe.result());
            let bid = cqueue::buffer_select(cqe.flags()).expect("a provided buffer");
            received.extend_from_slice(ring.buf_ring(idx).buffer(bid, cqe.result() as usize));
        }
    }
    assert_eq!(received.len(), 32, "two 16-byte buffers filled before the ring ran dry");
    assert_eq!(enobufs, 1, "exhaustion is reported (and ends the multishot)");

    // Recycle both buffers and re-arm: the remaining 8 bytes arrive.
    ring.buf_ring_mut(idx).recycle(0);
    ring.buf_ring_mut(idx).recycle(1);
    // SAFETY: as above.
    unsafe { ring.uring.submission().push(&arm()).unwrap() };
    ring.uring.submit_and_wait(1).unwrap();
    let cqe = ring.uring.completion().next().unwrap();
    assert_eq!(cqe.result(), 8);
    assert!(cqueue::more(cqe.flags()), "multishot stays armed while buffers remain");
    assert_eq!(ring.buf_ring(idx).memory_bytes(), 4096 + 2 * 16, "a page of ring entries and the buffers");
}

mod reactor {
    use std::time::{Duration, Instant};

    use io_uring::{opcode, types};

    use crate::uring::ops::{pack, unpack};
    use crate::uring::probe::Capabilities;
    use crate::uring::reactor::{Reactor, ReactorConfig};
    use crate::uring::ring::RingConfig;

    fn reactor(rings: usize, per_ring: u32) -> Reactor {
        let caps = Capabilities::probe().unwrap();
        let config = ReactorConfig {
            rings,
            ring: RingConfig { sq_entries: 8, cq_entries: 64, fixed_files: per_ring },
            bgid: 3,
            buffers: 64,
            buffer_size: 1024,
        };
        Reactor::new(config, &caps).unwrap()
    }

    fn drain(r: &mut Reactor) -> Vec<(u32, i32)> {
        let mut batch = Vec::new();
        let mut seen = Vec::new();
        while r.next_batch(&mut batch) {
            seen.extend(batch.iter().map(|&(data, res, _)| (unpack(data).0, res)));
        }
        seen
    }

    #[test]
    fn entries_go_to_their_connections_rings_and_a_full_queue_is_submitted() {
        let mut r = reactor(3, 4);
        assert_eq!((r.rings(), r.per_ring(), r.slot(9), r.ring_of(9), r.ring_of(100)), (3, 4, 1, 2, 2));
        // 30 no-ops (the submission queues hold 8 each) for connections 0..12.
        for i in 0..30u32 {
            r.push(opcode::Nop::new().build().user_data(pack(i % 12, 0, 1)));
        }
        r.flush().unwrap();
        assert_eq!(r.queued(), 0, "a full queue is submitted to make room");
        r.wait(Duration::ZERO).unwrap();
        let mut seen = drain(&mut r);
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < 30 && Instant::now() < deadline {
            r.wait(Duration::from_millis(10)).unwrap();
            seen.extend(drain(&mut r));
        }
        seen.sort_unstable();
        let mut want: Vec<(u32, i32)> = (0..30).map(|i| (i % 12, 0)).collect();
        want.sort_unstable();
        assert_eq!(seen, want, "every completion exactly once, none of the reactor's own");
    }

    #[test]
    fn a_completion_on_another_ring_wakes_the_thread_sleeping_on_ring_0() {
        let mut r = reactor(3, 2);
        // Let ring 0 arm its polls of the other rings' eventfds.
        r.wait(Duration::ZERO).unwrap();
        assert!(drain(&mut r).is_empty());
        // A 50 ms timeout on ring 2 (connection 5); the reactor sleeps for up to 5 s.
        let ts = Box::leak(Box::new(types::Timespec::from(Duration::from_millis(50))));
        r.push(opcode::Timeout::new(ts).build().user_data(pack(5, 0, 1)));
        let start = Instant::now();
        let mut seen = Vec::new();
        while seen.is_empty() && start.elapsed() < Duration::from_secs(4) {
            r.wait(Duration::from_secs(5)).unwrap();
            seen = drain(&mut r);
        }
        let took = start.elapsed();
        assert_eq!(seen, vec![(5, -libc::ETIME)], "the timeout, from ring 2");
        assert!(took < Duration::from_secs(2), "woken by ring 2, not by the 5 s wait: {took:?}");
    }
}
