//! `loadgen validate`: every catalogue scenario in scenarios/ validates; a broken one
//! is refused with exit 2 and one line naming the file, the line and the problem.

use crate::cli::{loadgen, stderr, temp_dir};

fn catalogue() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("scenarios/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_catalogue_scenario_validates() {
    let files = catalogue();
    assert!(!files.is_empty(), "the catalogue has scenarios");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = loadgen(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok: ")).count(), files.len(), "{stdout}");
}

#[test]
fn a_broken_scenario_is_refused_on_one_line_with_its_position() {
    let dir = temp_dir("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let smoke = std::fs::read_to_string(catalogue().into_iter().find(|f| f.ends_with("smoke.toml")).unwrap()).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, smoke.replace("hold = \"10s\"", "hold = \"10s\"\nhodl = 3")).unwrap();
    let line = smoke.lines().position(|l| l.starts_with("hold =")).unwrap() + 2;
    let out = loadgen(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {}:{line}:", bad.display())) && err.contains("unknown field `hodl`"),
        "{err}"
    );
    // --set can fix what the file gets wrong, and break what it gets right.
    let out = loadgen(&["validate", "--set", "load.connections=0", &catalogue()[0]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("load.connections: at least 1"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
