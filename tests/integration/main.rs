//! The one integration test binary: the protocol against independent servers
//! (Python `websockets`, Node `ws`), and the `loadgen` command line end to end
//! (`bad_input`: flags refused before any load).

mod bad_input;
mod cli;
mod interop;
mod progress;
mod report_schema;
mod serve_faults;
mod servers;
mod verdict;
