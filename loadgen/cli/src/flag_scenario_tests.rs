//! The flags and the scenario they print are the same run: for every example of
//! `loadgen run --help`, the engine's configuration from the flags equals the one from
//! the printed TOML read back as a file; a flag run keeps the flags' shape (run-wide
//! options, no cohorts), so its report is what it was.

use std::path::Path;

use clap::Parser;
use loadgen_engine::run::{MessageRate, Protocol, RunConfig, Traffic};
use loadgen_scenario::TargetSpec;

use crate::run_args::RunArgs;
use crate::{Cli, Command};

/// `loadgen run ...` parsed as the binary parses it.
fn parse(words: &[String]) -> RunArgs {
    match Cli::try_parse_from(words).unwrap_or_else(|e| panic!("{words:?}: {e}")).command {
        Some(Command::Run { args, .. }) => *args,
        other => panic!("not a run: {other:?}"),
    }
}

/// The words of each `loadgen run` example, comments and redirections dropped, with
/// `cert.pem` replaced by a real certificate file.
fn examples(cert: &Path) -> Vec<Vec<String>> {
    crate::run_cmd::EXAMPLES
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("loadgen run "))
        .map(|l| {
            let l = l.split_once(" #").map_or(l, |(cmd, _)| cmd);
            let l = l.split_once(" >").map_or(l, |(cmd, _)| cmd);
            l.split_whitespace()
                .map(|w| if w == "cert.pem" { cert.display().to_string() } else { w.to_string() })
                .collect()
        })
        .collect()
}

/// The configuration of `file` run with the example's flags of how loadgen runs, as
/// `loadgen run FILE` builds it.
fn file_config(file: &Path, flags: &RunArgs) -> RunConfig {
    let mut args = parse(&["loadgen".into(), "run".into(), file.display().to_string()]);
    args.workers = flags.workers;
    args.sources.clone_from(&flags.sources);
    args.ca_file.clone_from(&flags.ca_file);
    args.insecure = flags.insecure;
    args.no_tls_resumption = flags.no_tls_resumption;
    args.coalesce = flags.coalesce;
    args.lag_threshold = flags.lag_threshold;
    args.connect_lag_threshold = flags.connect_lag_threshold;
    args.max_message_size = flags.max_message_size;
    let (plan, _, _) = crate::scenario_run::read_plan(&args, &[]).expect("the printed file reads and compiles");
    let TargetSpec::Url(url) = &plan.target else { panic!("a URL target") };
    let urls: Vec<String> = std::iter::once(url.clone()).chain(plan.also.iter().cloned()).collect();
    crate::run_plan::run_config(&args, &plan, &urls).expect("the printed file maps onto the engine")
}

/// The configuration as text: the TLS settings by what they say (trust, resumption),
/// not by their session cache.
fn text(c: &RunConfig) -> String {
    let mut c = c.clone();
    let tls = c.tls.take().map(|t| (t.resumption_cache_size(), format!("{:?}", t).contains("insecure: true")));
    format!("{c:?} tls {tls:?}")
}

#[test]
fn every_run_example_prints_a_scenario_that_runs_the_same() {
    let dir = std::env::temp_dir().join(format!("loadgen-flag-scenarios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let server = loadgen_tls::TlsServerConfig::self_signed(["localhost", "127.0.0.1"]).unwrap();
    std::fs::write(&cert, server.cert_pem()).unwrap();
    let examples = examples(&cert);
    assert!(examples.len() >= 10, "{examples:?}");
    for (k, words) in examples.iter().enumerate() {
        let args = parse(words);
        let (scenario, flags) = crate::run_cmd::flag_config(&args).unwrap_or_else(|e| panic!("{words:?}: {e}"));
        assert!(flags.cohorts.is_empty(), "{words:?}: a flag run keeps the run-wide options: {:?}", flags.cohorts);
        let toml = crate::flag_scenario::file_text(&scenario, &words.join(" ")).unwrap();
        let file = dir.join(format!("example-{k}.toml"));
        std::fs::write(&file, &toml).unwrap();
        let from_file = file_config(&file, &args);
        assert_eq!(text(&from_file), text(&flags), "{words:?}\n{toml}");
        assert_eq!(from_file.tls.is_some(), flags.tls.is_some());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a few of the examples configure, so "the same" is also the flags' meaning.
#[test]
fn the_flags_mean_what_they_say_through_the_scenario() {
    let config = |line: &str| {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        crate::run_cmd::flag_config(&parse(&words)).unwrap_or_else(|e| panic!("{line}: {e}")).1
    };
    let base = "loadgen run --target ws://127.0.0.1:8080/ --connections 50 --duration 20s";
    let c = config(&format!("{base} --echo --rate 2000 --echo-connections 10 --arrivals poisson --seed 9"));
    assert_eq!(c.traffic, Traffic::Echo { message_size: 64, rate: MessageRate::Total(2000.0) });
    assert_eq!(
        (c.echo_connections, c.message_arrivals),
        (Some(10), loadgen_engine::schedule::Arrivals::Poisson { seed: 9 })
    );
    let c = config(&format!("{base} --echo --rate-per-conn 3 --message-size 100"));
    assert_eq!(c.traffic, Traffic::Echo { message_size: 100, rate: MessageRate::PerConnection(3.0) });
    let c = config(&format!("{base} --echo --think-time 250ms --on-open SUB=>OK --ping-interval 2s"));
    assert_eq!(c.traffic, Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop });
    assert_eq!(c.think_time, std::time::Duration::from_millis(250));
    assert_eq!(c.on_open.len(), 1);
    assert_eq!(c.on_open[0].expect.as_deref(), Some("OK"));
    assert_eq!(c.ping_interval, Some(std::time::Duration::from_secs(2)));
    let c = config(&format!("{base} --idle --target ws://127.0.0.2:8080/ --reconnect --reconnect-max 1ms"));
    assert_eq!((c.targets.len(), c.traffic), (2, Traffic::Idle));
    let policy = c.reconnect.expect("reconnect");
    assert_eq!(policy.max, policy.initial, "the largest ceiling is at least the first, as before");
    assert_eq!(policy.jitter, loadgen_engine::driver::Jitter::Full, "full jitter unless told");
    let c = config(&format!("{base} --idle --reconnect --reconnect-jitter none"));
    assert_eq!(c.reconnect.expect("reconnect").jitter, loadgen_engine::driver::Jitter::None);
    let c = config(&format!("{base} --idle --reconnect --reconnect-jitter equal"));
    assert_eq!(c.reconnect.expect("reconnect").jitter, loadgen_engine::driver::Jitter::Equal);
    let c = config("loadgen run --raw --target ws://127.0.0.1:9090/ --echo --close-timeout 3s");
    assert_eq!((c.protocol, c.close_timeout), (Protocol::RawTcp, std::time::Duration::from_secs(3)));
    let c = config("loadgen run --target http://127.0.0.1:8080/s --echo --rate-per-conn 0.5");
    assert_eq!(
        (c.protocol, c.traffic),
        (Protocol::Http1, Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(0.5) })
    );
    let c = config(&format!("{base} --echo --deflate --deflate-context-takeover"));
    let deflate = c.deflate.expect("deflate");
    assert!(!deflate.client_no_context_takeover && !deflate.server_no_context_takeover);
}

#[test]
fn contradictory_flags_are_refused_on_one_line() {
    let refused = |line: &str| {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let e = crate::run_cmd::flag_config(&parse(&words)).expect_err(line);
        assert!(!e.contains('\n'), "{e}");
        e
    };
    let base = "loadgen run --target ws://127.0.0.1:8080/";
    let e = refused(&format!("{base} --header X-A:1 --header x-a:2"));
    assert!(e.starts_with("--header x-a is given twice"), "{e}");
    let e = refused(&format!("{base} --echo --rate 10 --think-time 1s"));
    assert!(e.starts_with("--think-time applies to the closed loop"), "{e}");
    let e = refused(&format!("{base} --target http://127.0.0.1:8080/"));
    assert!(e.starts_with("mix of http(s):// and ws(s):// targets"), "{e}");
    let e = refused("loadgen run --raw --target wss://127.0.0.1:8443/");
    assert!(e.starts_with("--raw speaks plain TCP"), "{e}");
    let clap = Cli::try_parse_from(["loadgen", "run", "x.toml", "--print-scenario"]).unwrap_err();
    assert!(clap.to_string().contains("cannot be used with"), "{clap}");
}

/// docs/scenarios.md shows what `--print-scenario` prints for its example; it must be
/// what it prints.
#[test]
fn the_documented_printed_scenario_is_what_is_printed() {
    let doc = include_str!("../../../docs/scenarios.md");
    let (before, after) = doc.split_once("\nprints\n\n```toml\n").expect("the --print-scenario example");
    let shown = after.split_once("\n```").expect("its end").0;
    let command = before.lines().rev().find(|l| l.contains("--print-scenario >")).expect("the command");
    let words: Vec<String> = command.split_once(" >").unwrap().0.split_whitespace().map(String::from).collect();
    let (scenario, _) = crate::run_cmd::flag_config(&parse(&words)).unwrap();
    let printed = crate::flag_scenario::file_text(&scenario, "x").unwrap();
    let body = printed.split_once("\n\n").expect("the header comment, then the file").1;
    assert_eq!(body.trim_end(), shown.trim_end());
}
