//! Unit tests of the crate as a whole, on virtual time and a seeded RNG: no sockets.

mod client_flow;
mod corpus_replay;
mod decoder_checks;
mod parking;
mod proptests;
mod rfc_examples;
mod support;
