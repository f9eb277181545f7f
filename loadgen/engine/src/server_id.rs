//! Which server instance a connection landed on, as the server says it: a JSON
//! pointer into its text messages (`/worker` of the reference target's `lgready`,
//! `/node` of a user's hello message), read from the first text message of each
//! connection attempt that has a string or an unsigned integer there. On a reconnect
//! the instance is compared with the one the connection had before, which is what
//! sticky sessions behind a balancer promise: the report's
//! `connections.reconnected_same_server` and `reconnected_other_server`.
//!
//! Instances are told apart by the FNV-1a hash (32 bits) of the value's text, so two
//! different names collide with a chance of about one in four billion per pair. Like
//! `payload_shape`, a scanner: nothing allocated, never a panic on hostile text.
//! What it does not do: count (the worker's recorder) or decide what a reconnect is
//! (the connection's driver).

use crate::payload_shape::{JsonShape, at, fnv1a};

/// Where a server's messages name the instance holding the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdPath {
    keys: Vec<String>,
}

/// What a connection learned about its server on a new attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// Its first server (nothing known before).
    First,
    /// The same instance as before.
    Same,
    /// Another instance than before.
    Other,
}

impl ServerIdPath {
    /// A JSON pointer (`/worker`, `/meta/node`); the error says what one looks like.
    pub fn new(pointer: &str) -> Result<Self, String> {
        Ok(Self { keys: JsonShape::pointer(pointer)? })
    }

    /// The instance named by `text`, as a hash of the value's text; `None` if the
    /// message has no string or unsigned integer there.
    pub fn read(&self, text: &str) -> Option<u32> {
        let mut v = at(text.as_bytes(), &self.keys)?;
        if v.peek()? == b'"' {
            return v.string().map(fnv1a);
        }
        let start = v.i;
        v.unsigned()?;
        Some(fnv1a(&v.b[start..v.i]))
    }
}

/// Compares the instance a connection landed on with the one it had (`before`),
/// and remembers it.
pub fn landed(before: &mut Option<u32>, now: u32) -> Landing {
    let landing = match *before {
        None => Landing::First,
        Some(b) if b == now => Landing::Same,
        Some(_) => Landing::Other,
    };
    *before = Some(now);
    landing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_is_read_from_a_string_or_a_number_at_the_pointer() {
        let worker = ServerIdPath::new("/worker").unwrap();
        let w0 = worker.read(r#"{"lgready":1,"worker":0,"channels":["person:u1"]}"#);
        let w1 = worker.read(r#"{"lgready":1,"worker":1,"channels":["person:u1"]}"#);
        assert!(w0.is_some() && w1.is_some() && w0 != w1);
        assert_eq!(worker.read(r#"{"worker":"0"}"#), w0, "the value's text: 0 and \"0\" name one instance");
        assert_eq!(worker.read(r#"{"lgprobe":1,"worker":1,"body":{"worker":7}}"#), w1, "top level only");
        assert_eq!(worker.read(r#"{"type":"pong"}"#), None);
        assert_eq!(worker.read(r#"{"worker":-1}"#), None, "not a name");
        assert_eq!(worker.read(r#"{"worker":{"id":1}}"#), None);
        assert_eq!(worker.read("plain text"), None);
        assert_eq!(worker.read(r#"{"worker":"#), None, "truncated: no panic");
        let nested = ServerIdPath::new("/meta/node").unwrap();
        assert_eq!(nested.read(r#"{"meta":{"x":[1,2],"node":"eu-1"}}"#), Some(fnv1a(b"eu-1")));
        assert!(ServerIdPath::new("worker").unwrap_err().contains("JSON pointer"));
    }

    #[test]
    fn a_reconnect_lands_on_the_same_instance_or_another() {
        let mut before = None;
        assert_eq!(landed(&mut before, 7), Landing::First);
        assert_eq!(landed(&mut before, 7), Landing::Same);
        assert_eq!(landed(&mut before, 9), Landing::Other);
        assert_eq!(landed(&mut before, 9), Landing::Same, "compared with the latest, not the first");
        assert_eq!(before, Some(9));
    }
}
