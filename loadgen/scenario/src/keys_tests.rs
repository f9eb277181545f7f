//! The keys that say what `loadgen run`'s flags say (several URLs, raw TCP, a total
//! message rate and its arrivals, paced rates, deflate context takeover, the close
//! timeout), their refusals, and scenarios written back as TOML and read again.

use std::time::Duration;

use loadgen_engine::driver::{Step, Traffic};
use loadgen_engine::schedule::Arrivals;

use super::*;

/// A URL scenario of one group with `steps`, and `extra` lines in `[load]`.
fn url_scenario(url: &str, load_extra: &str, connection: &str, steps: &str) -> String {
    format!(
        "name = \"k\"\n[target]\nurl = \"{url}\"\n[load]\nconnections = 10\nconnect_rate = 100\nhold = \"2s\"\n\
         {load_extra}\n[connection]\n{connection}\n[[groups]]\nname = \"g\"\nconnections = 10\nsteps = [{steps}]\n"
    )
}

#[test]
fn the_flags_keys_compile_into_the_plan() {
    let text = url_scenario(
        "ws://10.0.0.1:80/",
        "message_rate = 500\narrivals = \"poisson\"\nseed = 7",
        "deflate = true\ndeflate_context_takeover = true\nclose_timeout = \"750ms\"",
        "{ do = \"ready\" }, { do = \"pooled\" }",
    )
    .replace("url = \"ws://10.0.0.1:80/\"", "url = \"ws://10.0.0.1:80/\"\nalso = [\"wss://10.0.0.2:443/\"]");
    let plan = load(&text, "k.toml", &[]).expect("compiles");
    assert_eq!(plan.also, ["wss://10.0.0.2:443/"]);
    assert_eq!((plan.message_rate, plan.arrivals), (Some(500.0), Arrivals::Poisson { seed: 7 }));
    assert!(plan.deflate && plan.deflate_context_takeover);
    assert_eq!(plan.close_timeout, Some(Duration::from_millis(750)));
    assert_eq!(plan.cohorts[0].program.steps[1], Step::Traffic(Traffic::Pool));

    let paced = url_scenario("ws://h/", "", "", "{ do = \"ready\" }, { do = \"paced\", rate = 3 }");
    let plan = load(&paced, "k.toml", &[]).expect("a paced rate");
    assert_eq!(plan.per_connection_rate, Some(3.0), "the rate as written");
    assert_eq!(
        plan.cohorts[0].program.steps[1],
        Step::Traffic(Traffic::Paced { interval: Duration::from_nanos(333_333_333) })
    );
    let every = url_scenario("ws://h/", "", "", "{ do = \"ready\" }, { do = \"paced\", every = \"250ms\" }");
    assert_eq!(load(&every, "k.toml", &[]).unwrap().per_connection_rate, Some(4.0));

    let raw = url_scenario("tcp://127.0.0.1:9/", "", "", "{ do = \"ready\" }, { do = \"echo\" }");
    let plan = load(&raw, "k.toml", &[]).expect("raw TCP");
    assert_eq!(plan.target, TargetSpec::Url("tcp://127.0.0.1:9/".into()));
    let http = url_scenario("http://h/poll", "", "", "{ do = \"ready\" }, { do = \"echo\", think = \"1s\" }");
    let plan = load(&http, "k.toml", &[]).expect("HTTP polling");
    assert_eq!(
        plan.cohorts[0].program.steps[1],
        Step::Traffic(Traffic::ClosedLoop { think: Duration::from_secs(1), reply_timeout: None }),
        "an HTTP response has the client's own deadline, as with the flags"
    );
}

#[test]
fn the_flags_keys_refuse_bad_values_naming_the_key() {
    let pooled = "{ do = \"ready\" }, { do = \"pooled\" }";
    let echo = "{ do = \"ready\" }, { do = \"echo\" }";
    let cases = [
        (url_scenario("ws://h/", "", "", pooled), "load.message_rate: the pooled steps share it"),
        (url_scenario("ws://h/", "message_rate = 5", "", echo), "no group has a { do = \"pooled\" } step"),
        (url_scenario("ws://h/", "message_rate = -1", "", pooled), "load.message_rate: a positive number"),
        (url_scenario("ws://h/", "message_rate = 2e9", "", pooled), "at most 1e9"),
        (url_scenario("ws://h/", "message_rate = 0.1", "", pooled), "intends no message at all"),
        (url_scenario("ws://h/", "message_rate = 5\narrivals = \"bursty\"", "", pooled), "load.arrivals: \"bursty\""),
        (url_scenario("ws://h/", "arrivals = \"poisson\"", "", echo), "load.arrivals: spaces load.message_rate's"),
        (url_scenario("ws://h/", "message_rate = 5\nseed = 3", "", pooled), "load.seed: seeds the Poisson arrivals"),
        (url_scenario("ws://h/", "", "", "{ do = \"paced\", rate = 0 }"), "steps[0]: rate: messages per second"),
        (url_scenario("ws://h/", "", "", "{ do = \"paced\" }"), "paced takes either every"),
        (url_scenario("ws://h/", "", "", "{ do = \"paced\", every = \"1s\", rate = 1 }"), "paced takes either every"),
        (url_scenario("ws://h/", "", "deflate_context_takeover = true", echo), "goes with deflate = true"),
        (url_scenario("tcp://h:9/", "", "deflate = true", echo), "connection.deflate: permessage-deflate"),
        (url_scenario("ws://h/", "", "close_timeout = \"0s\"", echo), "connection.close_timeout: at least 1ms"),
        (url_scenario("tcp://h:9/", "", "", "{ do = \"send\", text = \"x\" }, { do = \"echo\" }"), "a WebSocket step"),
        (url_scenario("http://h/", "", "", "{ do = \"ping\", every = \"1s\" }"), "carries probes only"),
        (
            url_scenario("ws://h/", "", "", echo)
                .replace("url = \"ws://h/\"", "url = \"ws://h/\"\nalso = [\"http://h/\"]"),
            "target.also: \"http://h/\" does not speak what target.url",
        ),
        (
            url_scenario("embedded", "", "", echo)
                .replace("url = \"embedded\"", "url = \"embedded\"\nalso = [\"ws://h/\"]"),
            "target.also: more URLs go with a URL target",
        ),
    ];
    for (text, problem) in cases {
        let e = load(&text, "k.toml", &[]).expect_err(problem);
        assert!(e.to_string().starts_with("k.toml: ") && e.to_string().contains(problem), "{problem}: {e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn durations_are_written_back_as_they_read() {
    use crate::model::{format_duration, parse_duration};
    for (d, text) in [
        (Duration::from_secs(7200), "2h"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(120), "2m"),
        (Duration::from_millis(1500), "1500ms"),
        (Duration::from_micros(250), "250us"),
        (Duration::from_nanos(1), "0.000000001s"),
        (Duration::from_nanos(2_000_000_001), "2.000000001s"),
        (Duration::ZERO, "0s"),
    ] {
        assert_eq!(format_duration(d), text);
        assert_eq!(parse_duration(text), Ok(d), "{text} reads back");
    }
}

#[test]
fn every_catalogue_scenario_is_written_back_as_toml_that_reads_the_same() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    assert!(files.len() >= 10, "{files:?}");
    let reader = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| e.to_string());
    for file in files {
        let origin = file.display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario = read_with(&text, &origin, &[], &reader).expect("reads");
        let written = to_toml(&scenario).expect("writes");
        let again = read(&written, "written", &[]).unwrap_or_else(|e| panic!("{origin}: {e}\n{written}"));
        assert_eq!(again, scenario, "{origin}:\n{written}");
        assert_eq!(compile(&again, "written"), compile(&scenario, "written"), "{origin}");
    }
}
