//! System dependencies: the one table of Debian packages the project needs,
//! each with a probe, and their non-interactive installation.
//!
//! To add a dependency, add one line to [`DEPS`].

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::cmd::{Cmd, on_path};

/// How to tell whether a dependency is already there.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// An executable of this name on `PATH`.
    Command(&'static str),
    /// `python3 -c "import <modules>"` succeeds (comma-separated modules).
    PythonImport(&'static str),
    /// A file exists at this absolute path (a header, a library, ...).
    #[allow(dead_code)] // for -dev packages, e.g. libbpf-dev's headers
    File(&'static str),
}

/// One dependency: a probe and the Debian package that satisfies it.
#[derive(Clone, Copy, Debug)]
pub struct Dep {
    pub probe: Probe,
    pub package: &'static str,
}

const fn dep(probe: Probe, package: &'static str) -> Dep {
    Dep { probe, package }
}

/// Everything `cargo xtask test` and `cargo xtask demo` need from Debian.
pub const DEPS: &[Dep] = &[
    dep(Probe::Command("node"), "nodejs"),
    dep(Probe::Command("npm"), "npm"),
    dep(Probe::Command("python3"), "python3"),
    // `python3 -m venv` needs ensurepip, which Debian ships in python3-venv.
    dep(Probe::PythonImport("venv, ensurepip"), "python3-venv"),
    dep(Probe::Command("tmux"), "tmux"),
    // The reference target's embedded Redis (loadgen/target) and its tests.
    dep(Probe::Command("redis-server"), "redis-server"),
    // Its HAProxy topology (--balancer haproxy) and its tests.
    dep(Probe::Command("haproxy"), "haproxy"),
    // Its --redis-sentinel tests (a master, a replica and sentinels started by the test).
    dep(Probe::Command("redis-sentinel"), "redis-sentinel"),
    // The integration test html_report: report.html opened in headless Chromium (DevTools protocol).
    dep(Probe::Command("chromium"), "chromium"),
];

impl Probe {
    fn present(self) -> Result<bool> {
        Ok(match self {
            Probe::Command(name) => on_path(name),
            Probe::PythonImport(modules) => {
                on_path("python3")
                    && Cmd::new("python3").args(["-c", &format!("import {modules}")]).output()?.status.success()
            }
            Probe::File(path) => std::path::Path::new(path).exists(),
        })
    }

    fn describe(self) -> String {
        match self {
            Probe::Command(name) => format!("command `{name}`"),
            Probe::PythonImport(modules) => format!("python3 modules {modules}"),
            Probe::File(path) => format!("file {path}"),
        }
    }
}

/// The packages whose probe fails, in table order, without duplicates.
fn missing() -> Result<Vec<&'static str>> {
    let mut packages: Vec<&'static str> = Vec::new();
    for d in DEPS {
        if !d.probe.present()? {
            println!("missing: {} (Debian package {})", d.probe.describe(), d.package);
            if !packages.contains(&d.package) {
                packages.push(d.package);
            }
        }
    }
    Ok(packages)
}

fn is_root() -> bool {
    // The real uid is the first number of the `Uid:` line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().next().map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn apt(args: &[&str]) -> Cmd {
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        // Wait for another apt/dpkg to finish instead of failing at once.
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(args)
}

/// Phase `deps`: installs whatever in [`DEPS`] is missing (as root), or fails
/// naming the packages and the command to run.
pub fn ensure() -> Result<()> {
    let packages = missing()?;
    if packages.is_empty() {
        println!("all {} system dependencies present", DEPS.len());
        return Ok(());
    }
    let list = packages.join(" ");
    if !is_root() {
        bail!(
            "missing Debian packages: {list}; install them with: \
             sudo apt-get update && sudo apt-get install -y --no-install-recommends {list}"
        );
    }
    // At most once per run, and only because something is missing.
    static UPDATED: AtomicBool = AtomicBool::new(false);
    if !UPDATED.load(Ordering::Relaxed) {
        apt(&["update"]).run_retrying()?;
        UPDATED.store(true, Ordering::Relaxed);
    }
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&packages);
    apt(&install).run_retrying()?;
    let still = missing()?;
    if !still.is_empty() {
        bail!("installed {list}, but these are still missing: {}", still.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_debian_names() {
        for d in DEPS {
            let ok = d.package.len() >= 2
                && d.package.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
            assert!(ok, "{:?}", d);
        }
    }
}
