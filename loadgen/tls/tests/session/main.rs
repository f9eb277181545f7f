//! Client ↔ server tests of `loadgen-tls`, in memory (one loopback test uses real
//! sockets on 127.0.0.1).

mod close;
mod echo;
mod errors;
mod loopback;
mod pipe;
mod resume;
