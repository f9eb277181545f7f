//! Signals for the demo and the benchmarks: catching Ctrl-C (SIGINT) and SIGTERM
//! while a child runs, so that xtask can forward them to the child it chose and stop
//! the others in order, and sending signals to processes xtask started (by pid).
//!
//! xtask has no libc dependency: the two C functions it needs are declared here
//! (std links the C library anyway). Linux signal numbers.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// `SIG_DFL` as a `sighandler_t`.
const SIG_DFL: usize = 0;

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn kill(pid: i32, sig: i32) -> i32;
}

/// How many SIGINT/SIGTERM arrived since [`Catch::install`].
static RECEIVED: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: i32) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.fetch_add(1, Ordering::Relaxed);
}

/// While alive, SIGINT and SIGTERM are counted instead of ending xtask; dropping it
/// restores the default action.
pub struct Catch(());

impl Catch {
    pub fn install() -> Catch {
        RECEIVED.store(0, Ordering::Relaxed);
        let handler = on_signal as extern "C" fn(i32) as usize;
        // SAFETY: the handler only touches an atomic.
        unsafe {
            signal(SIGINT, handler);
            signal(SIGTERM, handler);
        }
        Catch(())
    }

    /// Signals caught so far.
    pub fn received(&self) -> u32 {
        RECEIVED.load(Ordering::Relaxed)
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        // SAFETY: restoring the default disposition.
        unsafe {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
        }
    }
}

/// Sends `sig` to the process `pid` (one that xtask started).
pub fn send(pid: u32, sig: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(io::Error::other)?;
    if pid <= 0 {
        return Err(io::Error::other("refusing to signal a process group"));
    }
    // SAFETY: plain syscall wrapper; pid > 0 names one process.
    if unsafe { kill(pid, sig) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}
