//! `cargo xtask test [--long]`: the whole suite, as CI runs it (`.ci/run`).

use std::path::Path;

use crate::cmd::Cmd;
use crate::deps;
use crate::interop::Interop;
use crate::phases::Phases;

/// Runs every phase, stopping at the first failure; false if one failed.
pub fn run(root: &Path, long: bool) -> bool {
    let interop = Interop::new(root);
    let cargo = || Cmd::new("cargo").dir(root);
    let cargo_test = || {
        let mut cmd = cargo().env("LOADGEN_REQUIRE_INTEROP", "1");
        for (key, value) in interop.test_env() {
            cmd = cmd.env(key, value);
        }
        cmd.args(["test", "--workspace"])
    };

    let mut phases = Phases::new(if long { "cargo xtask test --long" } else { "cargo xtask test" });
    phases.run("deps", deps::ensure);
    phases.run("interop-setup", || interop.setup());
    phases.run("fmt", || cargo().args(["fmt", "--all", "--check"]).run());
    phases.run("clippy", || cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]).run());
    phases.run("tests", || cargo_test().run());
    if long {
        phases.run("tests-ignored", || cargo_test().args(["--", "--ignored"]).run());
    }
    phases.finish()
}
