//! The one integration test binary: the protocol against independent servers
//! (Python `websockets`, Node `ws`), and the `loadgen` command line end to end.

mod cli;
mod interop;
mod progress;
mod report_schema;
mod serve_faults;
mod servers;
mod verdict;
