//! `cargo xtask fuzz [--seconds N] [--target NAME]`: runs the cargo-fuzz
//! targets of `loadgen/proto/fuzz` on nightly and keeps every crash as a
//! committed regression input (`regressions/<target>/`, replayed by unit tests).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::cmd::Cmd;

/// libFuzzer's names for inputs worth keeping.
const FINDING_PREFIXES: &[&str] = &["crash-", "leak-", "timeout-", "oom-"];

/// Runs each selected target for `seconds`; false if any found something.
pub fn run(root: &Path, seconds: u64, only: Option<&str>) -> Result<bool> {
    let fuzz_dir = root.join("loadgen/proto/fuzz");
    if !fuzz_dir.join("Cargo.toml").is_file() {
        bail!("no fuzz crate at {}", fuzz_dir.display());
    }
    ensure_cargo_fuzz()?;

    let listed = nightly_fuzz(&fuzz_dir).arg("list").read()?;
    let all: Vec<String> = listed.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let targets = match only {
        Some(name) if all.iter().any(|t| t == name) => vec![name.to_string()],
        Some(name) => bail!("no fuzz target {name}; targets: {}", all.join(", ")),
        None if all.is_empty() => bail!("`cargo fuzz list` lists no targets"),
        None => all,
    };

    let mut kept_all: Vec<PathBuf> = Vec::new();
    let mut crashed: Vec<&str> = Vec::new();
    for target in &targets {
        println!("==> fuzz {target} for {seconds}s");
        let artifacts = fuzz_dir.join("artifacts").join(target);
        let started = SystemTime::now();
        // New inputs go to a scratch corpus under target/; the committed corpus is only
        // read, so a fuzz run never dirties the work tree (minimise and commit by hand).
        let scratch = root.join("target").join("fuzz-corpus").join(target);
        fs::create_dir_all(&scratch)?;
        let committed = fuzz_dir.join("corpus").join(target);
        let status = nightly_fuzz(&fuzz_dir)
            .args(["run", target.as_str()])
            .arg(&scratch)
            .arg(&committed)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .status()?;
        let findings = list_findings(&artifacts);
        let fresh = findings.iter().any(|p| fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t >= started));
        if !status.success() && !fresh {
            bail!("`cargo fuzz run {target}` failed ({status}) without leaving an input");
        }
        // Everything not yet kept, including leftovers of interrupted runs.
        let kept = keep_regressions(&fuzz_dir, target, &findings)?;
        if !status.success() {
            crashed.push(target);
        }
        let verdict = if status.success() { "no crash" } else { "CRASHED" };
        println!("<== fuzz {target}: {verdict}, {} new regression input(s)", kept.len());
        kept_all.extend(kept);
    }

    for path in &kept_all {
        println!("new regression input: {}", path.strip_prefix(root).unwrap_or(path).display());
    }
    if crashed.is_empty() && kept_all.is_empty() {
        println!("fuzz: OK, no findings in {} target(s)", targets.len());
        return Ok(true);
    }
    if !crashed.is_empty() {
        println!("fuzz: FAILED, crashes in: {}", crashed.join(", "));
    } else {
        println!("fuzz: FAILED, earlier findings were not yet kept as regression inputs");
    }
    println!("Reproduce with: (cd loadgen/proto/fuzz && cargo +nightly fuzz run TARGET artifacts/TARGET/FILE)");
    println!("Commit the new files under loadgen/proto/fuzz/regressions/ with the fix.");
    Ok(false)
}

/// `cargo +nightly fuzz` in the fuzz crate, without the stable toolchain that
/// `cargo xtask` itself was started with leaking into it.
fn nightly_fuzz(fuzz_dir: &Path) -> Cmd {
    Cmd::new("cargo").args(["+nightly", "fuzz"]).env_remove("RUSTUP_TOOLCHAIN").dir(fuzz_dir)
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = Cmd::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !present {
        crate::cmd::retry(crate::cmd::DOWNLOAD_TRIES, || {
            Cmd::new("cargo").args(["install", "cargo-fuzz", "--locked"]).run()
        })?;
    }
    Ok(())
}

/// The libFuzzer findings in an artifacts directory (none if it is missing).
fn list_findings(dir: &Path) -> BTreeSet<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| FINDING_PREFIXES.iter().any(|pre| n.starts_with(pre)))
        })
        .collect()
}

/// Copies the findings not yet in `regressions/<target>/` there (libFuzzer
/// names them by content hash); returns the new copies.
fn keep_regressions(fuzz_dir: &Path, target: &str, findings: &BTreeSet<PathBuf>) -> Result<Vec<PathBuf>> {
    let dest_dir = fuzz_dir.join("regressions").join(target);
    // Kept inputs may have been renamed to say what they found: compare contents.
    let known: BTreeSet<Vec<u8>> = fs::read_dir(&dest_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| fs::read(entry.path()).ok())
        .collect();
    let mut kept = Vec::new();
    for src in findings {
        let dest = dest_dir.join(src.file_name().expect("a file"));
        if dest.exists() || fs::read(src).is_ok_and(|bytes| known.contains(&bytes)) {
            continue;
        }
        fs::create_dir_all(&dest_dir).with_context(|| format!("creating {}", dest_dir.display()))?;
        fs::copy(src, &dest).with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        println!("kept {}", dest.display());
        kept.push(dest);
    }
    Ok(kept)
}
