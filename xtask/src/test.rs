//! `cargo xtask test [--long]`: the whole suite, as CI runs it (`.ci/run`): deps,
//! interop servers, fmt, clippy, the tests, then `demo --quick` and its Ctrl-C path,
//! then the scenario catalogue, each with and without its fault.

use std::path::Path;

use anyhow::bail;

use crate::catalogue;
use crate::cmd::Cmd;
use crate::demo;
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
    // The README's first command, in its CI size: release build, embedded target,
    // one `loadgen run`, checks on its report.json.
    phases.run("demo-quick", || {
        let opts = demo::Options { quick: true, setup: demo::Setup::BuildOnly, out: None };
        match demo::run(root, &opts)? {
            demo::Outcome::Passed => Ok(()),
            demo::Outcome::Interrupted => bail!("the demo was interrupted"),
        }
    });
    // Ctrl-C during the demo: exit 130, report.json written with interrupted: true.
    phases.run("demo-ctrl-c", || demo::test_ctrl_c(root));
    // Every catalogue scenario, short form, with and without its fault.
    phases.run("catalogue", || catalogue::run(root, long));
    phases.finish()
}
