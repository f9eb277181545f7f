//! Bytes over a real socket: a `TlsSession` driven over a std `TcpStream` to a rustls
//! `StreamOwned` server on 127.0.0.1 (port 0), with bounded timeouts.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use loadgen_tls::TlsSession;
use rustls::{ServerConnection, StreamOwned};

use crate::pipe::{client_config, server_config};

const TIMEOUT: Duration = Duration::from_secs(10);
const LEN: usize = 300_000;

#[test]
fn echo_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_rustls = server_config().rustls_config().clone();
    let server = std::thread::spawn(move || -> std::io::Result<usize> {
        let (tcp, _) = listener.accept()?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        let conn = ServerConnection::new(server_rustls).map_err(std::io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        let mut buf = vec![0u8; 32 * 1024];
        let mut echoed = 0;
        loop {
            let n = tls.read(&mut buf)?; // 0 at the client's close_notify
            if n == 0 {
                break;
            }
            tls.write_all(&buf[..n])?;
            echoed += n;
        }
        tls.conn.send_close_notify();
        tls.flush()?;
        Ok(echoed)
    });

    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut session = TlsSession::new(&client_config(server_config()), "localhost").unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut received = Vec::new();
    session.poll_transmit(&mut out).unwrap();
    while !session.is_handshake_complete() {
        tcp.write_all(&out).unwrap();
        out.clear();
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "server closed during the handshake");
        session.receive(&mut buf[..n], &mut out, &mut received).unwrap();
    }
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(50_000) {
        session.send(chunk, &mut out).unwrap();
    }
    session.close(&mut out).unwrap();
    // The server echoes as it reads; read concurrently with writing to avoid a deadlock
    // on full socket buffers.
    let mut writer = tcp.try_clone().unwrap();
    let to_send = std::mem::take(&mut out);
    let sender = std::thread::spawn(move || writer.write_all(&to_send));
    while !session.peer_closed() {
        let n = tcp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        // Handshake leftovers (TLS 1.3 tickets) need no answer; data needs none either.
        session.receive(&mut buf[..n], &mut out, &mut received).unwrap();
    }
    sender.join().unwrap().unwrap();
    session.receive_eof().unwrap();
    assert!(session.is_closed());
    assert!(out.is_empty());
    assert_eq!(received.len(), LEN);
    assert!(received == data, "echo differs");
    assert_eq!(server.join().unwrap().unwrap(), LEN);
    assert_eq!(session.incoming_capacity(), 0);
}
