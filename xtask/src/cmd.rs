//! Running external commands: every command is logged as `$ cmd args` before
//! it runs, output is passed through, and downloads can be retried.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How many times a download (pip, npm, apt-get) is tried in all.
pub const DOWNLOAD_TRIES: u32 = 3;

/// An external command, with the environment and directory it runs in.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    env_removes: Vec<OsString>,
    dir: Option<PathBuf>,
    own_group: bool,
}

impl Cmd {
    /// A command running `program` (looked up on `PATH` if it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            env_removes: Vec::new(),
            dir: None,
            own_group: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.env_removes.push(key.as_ref().to_owned());
        self
    }

    /// Runs in `dir` instead of the current directory.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Starts it in a process group of its own: a Ctrl-C at the terminal then reaches
    /// xtask only, which decides what to forward to whom (see `demo`).
    pub fn own_process_group(mut self) -> Cmd {
        self.own_group = true;
        self
    }

    /// The command as a shell line, e.g. `(cd dir && FOO=1 prog 'a b')`.
    pub fn display(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        for (k, v) in &self.envs {
            words.push(format!("{}={}", k.to_string_lossy(), quote(v)));
        }
        words.push(quote(&self.program));
        words.extend(self.args.iter().map(|a| quote(a)));
        let line = words.join(" ");
        match &self.dir {
            Some(dir) => format!("(cd {} && {line})", quote(dir.as_os_str())),
            None => line,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for key in &self.env_removes {
            cmd.env_remove(key);
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        if self.own_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd
    }

    fn log(&self) {
        println!("$ {}", self.display());
    }

    /// Runs with inherited stdio (no stdin) and returns the exit status.
    pub fn status(&self) -> Result<ExitStatus> {
        self.log();
        self.command().stdin(Stdio::null()).status().with_context(|| format!("cannot run `{}`", self.display()))
    }

    /// Runs with inherited stdio and fails unless it exits 0.
    pub fn run(&self) -> Result<()> {
        let status = self.status()?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.display());
        }
        Ok(())
    }

    /// Like [`Cmd::run`], tried up to [`DOWNLOAD_TRIES`] times with a short
    /// backoff: for commands that download.
    pub fn run_retrying(&self) -> Result<()> {
        retry(DOWNLOAD_TRIES, || self.run())
    }

    /// Runs with stdout and stderr captured (still logged); for probes and
    /// for commands whose output is parsed. Does not check the exit status.
    pub fn output(&self) -> Result<Output> {
        self.log();
        self.command().stdin(Stdio::null()).output().with_context(|| format!("cannot run `{}`", self.display()))
    }

    /// Like [`Cmd::output`], but fails unless it exits 0; returns stdout.
    pub fn read(&self) -> Result<String> {
        let out = self.output()?;
        if !out.status.success() {
            bail!("`{}` failed ({}): {}", self.display(), out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts it with no stdin, `stdout` as given and inherited stderr.
    pub fn spawn_with(&self, stdout: Stdio) -> Result<Child> {
        self.log();
        self.command()
            .stdin(Stdio::null())
            .stdout(stdout)
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display()))
    }
}

/// Calls `f` up to `tries` times, sleeping 2 s, 4 s, ... between attempts.
pub fn retry<T>(tries: u32, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if attempt < tries => {
                let wait = Duration::from_secs(2 * u64::from(attempt));
                eprintln!("attempt {attempt}/{tries} failed: {e:#}; retrying in {wait:?}");
                thread::sleep(wait);
                attempt += 1;
            }
            Err(e) => return Err(e.context(format!("failed after {tries} attempts"))),
        }
    }
}

/// Quotes a word for display in a POSIX shell line, only when needed.
fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain { s.into_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// Whether `name` is an executable file in a directory of `PATH`.
pub fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name)).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let cmd = Cmd::new("cargo").args(["test", "--", "a b", "it's"]).env("K", "v 1").dir("x/y");
        assert_eq!(cmd.display(), r"(cd x/y && K='v 1' cargo test -- 'a b' 'it'\''s')");
    }

    #[test]
    fn retry_stops_at_first_success() {
        let mut calls = 0;
        let v = retry(3, || {
            calls += 1;
            Ok::<_, anyhow::Error>(calls)
        })
        .unwrap();
        assert_eq!((v, calls), (1, 1));
    }
}
