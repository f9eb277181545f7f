//! The interop servers' installations (phase `interop-setup`): a Python venv
//! with `websockets` in `target/interop/venv`, and `ws` in
//! `tests/interop/node/node_modules`. Idempotent, and quick when done.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, retry};

/// Where the interop servers and their installations live.
pub struct Interop {
    root: PathBuf,
}

impl Interop {
    pub fn new(root: &Path) -> Interop {
        Interop { root: root.to_owned() }
    }

    pub fn venv(&self) -> PathBuf {
        self.root.join("target/interop/venv")
    }

    /// The venv's interpreter: `LOADGEN_INTEROP_PYTHON` for the tests.
    pub fn python(&self) -> PathBuf {
        self.venv().join("bin/python")
    }

    fn requirements(&self) -> PathBuf {
        self.root.join("tests/interop/python/requirements.txt")
    }

    /// Records which requirements.txt the venv was installed from.
    fn stamp(&self) -> PathBuf {
        self.venv().join("loadgen-requirements.txt")
    }

    /// The Node project: `LOADGEN_INTEROP_NODE_DIR` for the tests.
    pub fn node_dir(&self) -> PathBuf {
        self.root.join("tests/interop/node")
    }

    /// The environment `cargo test` needs to find both servers.
    pub fn test_env(&self) -> [(&'static str, PathBuf); 2] {
        [("LOADGEN_INTEROP_PYTHON", self.python()), ("LOADGEN_INTEROP_NODE_DIR", self.node_dir())]
    }

    /// Phase `interop-setup`.
    pub fn setup(&self) -> Result<()> {
        self.setup_python()?;
        self.setup_node()
    }

    fn setup_python(&self) -> Result<()> {
        let python = self.python();
        let healthy = python.exists() && Cmd::new(&python).arg("--version").output().is_ok_and(|o| o.status.success());
        if !healthy {
            // --clear: a venv whose interpreter no longer runs is rebuilt.
            Cmd::new("python3").args(["-m", "venv", "--clear"]).arg(self.venv()).run()?;
        }
        let wanted = fs::read_to_string(self.requirements())
            .with_context(|| format!("reading {}", self.requirements().display()))?;
        let installed = fs::read_to_string(self.stamp()).unwrap_or_default();
        if healthy && installed == wanted && self.python_imports_ok()? {
            println!("python venv up to date: {}", self.venv().display());
            return Ok(());
        }
        retry(3, || {
            Cmd::new(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(["--retries", "5", "--timeout", "30", "-r"])
                .arg(self.requirements())
                .run()
        })?;
        if !self.python_imports_ok()? {
            bail!("`websockets` still does not import in {}", python.display());
        }
        fs::write(self.stamp(), wanted).with_context(|| format!("writing {}", self.stamp().display()))?;
        Ok(())
    }

    fn python_imports_ok(&self) -> Result<bool> {
        Ok(Cmd::new(self.python()).args(["-c", "import websockets"]).output()?.status.success())
    }

    fn setup_node(&self) -> Result<()> {
        let dir = self.node_dir();
        let lock = dir.join("package-lock.json");
        let modules = dir.join("node_modules");
        let lock_time = mtime(&lock).with_context(|| format!("no {}", lock.display()))?;
        let fresh = modules.join("ws/package.json").is_file() && mtime(&modules).is_some_and(|t| t >= lock_time);
        if fresh {
            println!("node_modules up to date: {}", modules.display());
            return Ok(());
        }
        let npm_ci = Cmd::new("npm").args(["ci", "--no-audit", "--no-fund"]).dir(&dir);
        npm_ci.run_retrying()?;
        if !modules.join("ws/package.json").is_file() {
            bail!("`npm ci` succeeded but {} has no ws", modules.display());
        }
        Ok(())
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}
