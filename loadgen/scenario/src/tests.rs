//! Scenario files read, overridden, validated and compiled; bad ones refused on one
//! line that says where and why.

use std::time::Duration;

use loadgen_engine::driver::{Step, Traffic};

use super::*;

const SMOKE: &str = include_str!("testdata/sample.toml");

#[test]
fn a_scenario_compiles_to_groups_programs_and_checks() {
    let plan = load(SMOKE, "scenarios/smoke.toml", &[]).expect("smoke compiles");
    assert_eq!(plan.name, "smoke");
    let TargetSpec::Embedded(embedded) = &plan.target else { panic!("smoke runs on the embedded target") };
    assert_eq!((embedded.mode.as_str(), embedded.path.as_str()), ("notify", "/ws?user=u{i}"));
    assert_eq!((plan.connections, plan.connect_rate, plan.hold), (20, 20.0, Duration::from_secs(10)));
    assert_eq!(plan.headers, [("Origin".to_string(), "http://localhost".to_string())]);
    let names: Vec<_> = plan.cohorts.iter().map(|c| (c.name.as_str(), c.connections)).collect();
    assert_eq!(names, [("subscribers", 19), ("talker", 1)]);
    let subs = &plan.cohorts[0].program;
    assert_eq!(
        subs.steps[0],
        Step::WaitFor { pattern: "lgready".into(), timeout: Some(Duration::from_secs(2)) },
        "a wait without its own timeout takes the scenario's reply timeout"
    );
    assert_eq!(
        plan.cohorts[1].program.steps[1],
        Step::Traffic(Traffic::Paced { interval: Duration::from_millis(100) })
    );
    let policy = subs.reconnect.expect("the reconnect policy goes into every program");
    assert_eq!(
        (policy.initial, policy.max, policy.limit),
        (Duration::from_millis(200), Duration::from_secs(5), Some(5))
    );
    assert_eq!(plan.checks.len(), 3);
    assert_eq!(plan.checks[0].name, "nothing lost");
    assert_eq!(plan.checks[1].name, "connections.failed / connections.attempted < 0.001", "unnamed: the expression");
}

#[test]
fn sets_override_dotted_keys_with_toml_values_or_bare_strings() {
    let sets =
        ["load.hold=3s", "load.connections=30", "groups.0.connections=29", r#"target.url="ws://127.0.0.1:9/ws""#]
            .map(String::from);
    let plan = load(SMOKE, "smoke.toml", &sets).expect("overridden");
    assert_eq!((plan.hold, plan.connections, plan.cohorts[0].connections), (Duration::from_secs(3), 30, 29));
    assert_eq!(plan.target, TargetSpec::Url("ws://127.0.0.1:9/ws".into()));
    let e = load(SMOKE, "smoke.toml", &["groups.7.connections=1".into()]).unwrap_err();
    assert!(e.to_string().starts_with("--set: groups.7.connections=1: index 7 is past the end"), "{e}");
    let e = load(SMOKE, "smoke.toml", &["load.hold".into()]).unwrap_err();
    assert!(e.to_string().contains("expected key=value"), "{e}");
    let e = load(SMOKE, "smoke.toml", &["load.connections=lots".into()]).unwrap_err();
    assert!(e.to_string().contains("after --set"), "a string where a number goes: {e}");
}

#[test]
fn toml_mistakes_point_at_the_line_and_column() {
    // (text, problem, a text on the line the error points at)
    let cases = [
        (
            SMOKE.replace("connect_rate = 20", "connect_rate = 20\nconect_rate = 5"),
            "unknown field `conect_rate`",
            "conect_rate",
        ),
        (SMOKE.replace("hold = \"10s\"", "hold = \"10 parsecs\""), "not a unit of time", "parsecs"),
        (SMOKE.replace("hold = \"10s\"", "hold = 10"), "invalid type", "hold = 10"),
        (SMOKE.replace("{ do = \"paced\"", "{ do = \"dance\""), "unknown variant `dance`", "dance"),
        (SMOKE.replace("name = \"smoke\"", "name = \"smoke"), "", "name = \"smoke"),
    ];
    for (text, problem, marker) in cases {
        let line = text.lines().position(|l| l.contains(marker)).expect("marker") + 1;
        let e = load(&text, "s.toml", &[]).expect_err(problem);
        let (l, _) = e.at.unwrap_or_else(|| panic!("{problem}: no position in {e}"));
        assert_eq!(l, line, "{e}");
        assert!(e.message.contains(problem), "{e}");
        assert!(e.to_string().starts_with(&format!("s.toml:{line}:")) && !e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn whole_scenario_mistakes_name_the_key_and_the_fix() {
    let cases = [
        (
            SMOKE.replace("connections = 19", "connections = 18"),
            "groups: their connections add up to 19, but load.connections is 20",
        ),
        (SMOKE.replace("url = \"embedded\"", "url = \"ftp://x\""), "target.url: \"ftp://x\""),
        (SMOKE.replace("url = \"embedded\"", "url = \"ws://h/\"\nfaults = [\"delay=5\"]"), "target.faults"),
        (SMOKE.replace("connect_rate = 20", "connect_rate = 0"), "load.connect_rate"),
        (SMOKE.replace("hold = \"10s\"", "hold = \"0s\""), "load.hold"),
        (SMOKE.replace("initial = \"200ms\"", "initial = \"10s\""), "reconnect: initial"),
        (SMOKE.replace("name = \"talker\"", "name = \"subscribers\""), "groups[1] (\"subscribers\"): another group"),
        (SMOKE.replace("every = \"5s\"", "every = \"0s\""), "groups[0] (\"subscribers\").steps"),
        (SMOKE.replace("messages.lost == 0", "messages.lost = 0"), "checks[0].expr: expected a comparison"),
    ];
    for (text, problem) in cases {
        let e = load(&text, "s.toml", &[]).expect_err(problem);
        assert!(e.to_string().starts_with("s.toml: ") && e.to_string().contains(problem), "{problem}: {e}");
    }
}

#[test]
fn timelines_tokens_targets_and_the_catalogue_are_checked() {
    let timeline = |event: &str| SMOKE.replacen("[[checks]]", &format!("[[timeline]]\n{event}\n\n[[checks]]"), 1);
    let plan = load(
        &timeline("at = \"3s\"\ndo = \"publish\"\nchannel = \"unit:7\"\ncount = 5\ncritical = true\nbody = { a = 1 }"),
        "s.toml",
        &[],
    )
    .expect("a publish");
    assert_eq!(
        plan.timeline,
        [Event {
            at: Duration::from_secs(3),
            action: Action::Publish {
                channel: "unit:7".into(),
                count: 5,
                interval: None,
                critical: true,
                body: Some("{\"a\":1}".into())
            }
        }]
    );
    for (event, problem) in [
        ("at = \"1s\"\ndo = \"explode\"", "\"explode\" is not an action"),
        ("at = \"1s\"\ndo = \"fault_on\"", "give the fault"),
        ("at = \"1s\"\ndo = \"fault_off\"\nfault = \"delay=3\"", "takes a fault's name, not a spec"),
        ("at = \"1s\"\ndo = \"kill_worker\"\nchannel = \"x\"", "channel does not apply here (it takes nothing more)"),
        ("at = \"1s\"\ndo = \"publish\"\nchannel = \"x\"\ncount = 0", "count: 1 to 1000000"),
        ("at = \"1s\"\ndo = \"http\"\npath = \"no-slash\"", "must start with /"),
    ] {
        let e = load(&timeline(event), "s.toml", &[]).expect_err(problem);
        assert!(e.to_string().contains("timeline[0]") && e.to_string().contains(problem), "{problem}: {e}");
    }
    let on_url = timeline("at = \"1s\"\ndo = \"kill_worker\"").replace("url = \"embedded\"", "url = \"ws://h/\"");
    let e = load(&on_url, "s.toml", &[]).unwrap_err();
    assert!(e.to_string().contains("acts on the reference target"), "{e}");
    let http = timeline("at = \"1s\"\ndo = \"http\"\npath = \"/publish\"\nbody = \"raw\"")
        .replace("url = \"embedded\"", "url = \"ws://h/\"");
    let plan = load(&http, "s.toml", &[]).expect("http reaches a server of the user's");
    assert_eq!(
        plan.timeline[0].action,
        Action::Http { method: "POST".into(), path: "/publish".into(), body: Some("raw".into()) }
    );
    let e = load(SMOKE, "s.toml", &["target.url=\"ws://h/\"".into(), "target.workers=2".into()]).unwrap_err();
    assert!(e.to_string().contains("target.workers: applies to the embedded target"), "{e}");
    let e = load(SMOKE, "s.toml", &["target.mode=\"bogus\"".into()]).unwrap_err();
    assert!(e.to_string().contains("target.mode: \"bogus\" is not one of notify, echo, sink, push"), "{e}");
    let e = load(SMOKE, "s.toml", &["target.serve=[\"--listen\",\"1.2.3.4:5\"]".into()]).unwrap_err();
    assert!(e.to_string().contains("--listen is set by the run itself"), "{e}");
    let plan = load(SMOKE, "s.toml", &["connection.token={secret=\"k\",format=\"jwt\"}".into()]).unwrap();
    let token = plan.token.expect("a token");
    assert_eq!((token.user.as_str(), token.unit.as_str(), token.format), ("u{i}", "1", TokenFormat::Jwt));
    let e = load(SMOKE, "s.toml", &["connection.token={secret=\"k\",format=\"pgp\"}".into()]).unwrap_err();
    assert!(e.to_string().contains("connection.token.format"), "{e}");
    let cat = SMOKE.to_string() + "\n[catalogue]\nfault = [\"x=1\"]\nfails = [\"nothing found\"]\n";
    let e = load(&cat, "s.toml", &[]).unwrap_err();
    assert!(e.to_string().contains("catalogue.fails: \"nothing found\" is not the name of a check"), "{e}");
}

#[test]
fn connection_phases_replace_the_rate_and_must_add_up() {
    let phased = SMOKE.replace(
        "connect_rate = 20\n",
        "phases = [{ for = \"1s\", rate = 10 }, { for = \"2s\", rate = 0 }, { for = \"500ms\", rate = 20 }]\n",
    );
    let plan = load(&phased, "s.toml", &[]).expect("phases");
    assert_eq!(plan.connect_phases.len(), 3);
    assert_eq!(plan.connect_phases[2], (Duration::from_millis(500), 20.0));
    assert_eq!(plan.connect_rate, 20.0, "the fastest phase's rate");
    let short = phased.replace("rate = 20 }", "rate = 10 }");
    let e = load(&short, "s.toml", &[]).unwrap_err();
    assert!(e.to_string().contains("load.phases open 15.0 connections"), "{e}");
    let both = phased.replace("[load]\n", "[load]\nconnect_rate = 5\n");
    assert!(load(&both, "s.toml", &[]).unwrap_err().to_string().contains("not both"));
    let none = SMOKE.replace("connect_rate = 20\n", "");
    assert!(load(&none, "s.toml", &[]).unwrap_err().to_string().contains("give connect_rate"));
}

/// A small scenario with `load` and `checks` of the caller's.
fn with(load_keys: &str, checks: &str) -> Result<Plan, ScenarioError> {
    let text = format!(
        "name = \"p\"\n[target]\nurl = \"ws://127.0.0.1:9/\"\n[load]\nconnections = 100\n{load_keys}\n[[groups]]\nname = \
         \"g\"\nconnections = 100\nsteps = [{{ do = \"ready\" }}]\n{checks}"
    );
    load(&text, "p.toml", &[])
}

#[test]
fn phases_ramp_to_counts_or_at_rates_and_lay_out_named_windows() {
    let plan = with(
        "hold = \"5s\"\nphases = [{ name = \"warm\", for = \"2s\", to = 20 }, { for = \"1s\", rate = 0 }, { name = \
         \"spike\", for = \"500ms\", to = 100 }]",
        "",
    )
    .expect("phases compile");
    let rates: Vec<f64> = plan.connect_phases.iter().map(|(_, r)| *r).collect();
    assert_eq!(rates, [10.0, 0.0, 160.0]);
    let windows: Vec<(&str, u64, u64)> =
        plan.windows.iter().map(|w| (w.name.as_str(), w.first_second(), w.end_second())).collect();
    assert_eq!(windows, [("warm", 0, 2), ("phase2", 2, 3), ("spike", 3, 4), ("hold", 3, 9)]);
    let plan = with("connect_rate = 50\nhold = \"3s\"", "").unwrap();
    let windows: Vec<(&str, Duration, Duration)> =
        plan.windows.iter().map(|w| (w.name.as_str(), w.from, w.to)).collect();
    assert_eq!(
        windows,
        [("ramp", Duration::ZERO, Duration::from_secs(2)), ("hold", Duration::from_secs(2), Duration::from_secs(5))]
    );
    for (load, problem) in [
        (
            "hold = \"1s\"\nphases = [{ for = \"1s\", to = 60 }, { for = \"1s\", to = 50 }]",
            "is below the 60 connections",
        ),
        ("hold = \"1s\"\nphases = [{ for = \"1s\", to = 60, rate = 3 }]", "rate or to, not both"),
        ("hold = \"1s\"\nphases = [{ for = \"1s\" }]", "give rate (connections per second) or to"),
        ("hold = \"1s\"\nphases = [{ name = \"hold\", for = \"1s\", to = 100 }]", "\"hold\" is taken"),
        (
            "hold = \"1s\"\nphases = [{ name = \"a\", for = \"1s\", to = 50 }, { name = \"a\", for = \"1s\", to = 100 }]",
            "two phases are called \"a\"",
        ),
        ("hold = \"1s\"\nphases = [{ for = \"1s\", to = 90 }]", "open 90.0 connections"),
    ] {
        let e = with(load, "").unwrap_err().to_string();
        assert!(e.contains(problem) && !e.contains('\n'), "{load}: {e}");
    }
}

#[test]
fn checks_of_a_phase_read_its_sections_and_abort_only_when_asked() {
    let load = "connect_rate = 100\nhold = \"5s\"";
    let plan = with(
        load,
        "[[checks]]\nphase = \"hold\"\nexpr = \"latency_us.handshake.p99 < 10ms\"\n[[checks]]\nname = \"drops\"\nexpr = \
         \"connections.dropped < 5\"\nabort = true\nabort_after = \"2s\"\n[[checks]]\nname = \"in hold\"\nphase = \
         \"hold\"\nexpr = \"connections.dropped == 0\"\nabort = true",
    )
    .expect("phase checks compile");
    assert_eq!(plan.checks[0].phase.as_deref(), Some("hold"));
    assert_eq!(plan.checks[0].abort_from, None);
    assert_eq!(plan.checks[1].abort_from, Some(Duration::from_secs(2)));
    assert_eq!(plan.checks[2].abort_from, Some(Duration::from_secs(1)), "a phase's check from the phase's start");
    for (checks, problem) in [
        (
            "[[checks]]\nphase = \"spike\"\nexpr = \"connections.failed == 0\"",
            "\"spike\" is not a phase of this run; it has run, ramp, hold",
        ),
        ("[[checks]]\nphase = \"hold\"\nexpr = \"generator.cpu_s < 1\"", "generator.cpu_s is not kept per phase"),
        ("[[checks]]\nexpr = \"connections.failed == 0\"\nabort_after = \"1s\"", "abort_after: goes with abort = true"),
        (
            "[[checks]]\nexpr = \"connections.failed == 0\"\n[[checks]]\nexpr = \"connections.failed == 0\"",
            "another check is called",
        ),
    ] {
        let e = with(load, checks).unwrap_err().to_string();
        assert!(e.contains(problem) && !e.contains('\n'), "{checks}: {e}");
    }
}

#[test]
fn a_phase_check_is_judged_on_its_phase_and_abort_picks_the_first_failure_due() {
    let plan = with(
        "connect_rate = 100\nhold = \"5s\"",
        "[[checks]]\nname = \"hold ok\"\nphase = \"hold\"\nexpr = \"connections.dropped == 0\"\n[[checks]]\nname = \
         \"late\"\nexpr = \"connections.dropped < 3\"\nabort = true\nabort_after = \"3s\"\n[[checks]]\nname = \
         \"soon\"\nexpr = \"connections.dropped < 2\"\nabort = true",
    )
    .unwrap();
    let report = serde_json::json!({
        "config": { "connections": 100 },
        "connections": { "attempted": 100, "established": 100, "failed": 0, "dropped": 4, "open_at_end": 96, "peak_open": 100 },
        "phases": [
            { "name": "ramp", "from_s": 0, "to_s": 1, "seconds": 1,
              "connections": { "attempted": 100, "established": 100, "failed": 0, "dropped": 4, "open_at_end": 96, "peak_open": 100 } },
            { "name": "hold", "from_s": 1, "seconds": 3,
              "connections": { "attempted": 0, "established": 0, "failed": 0, "dropped": 0, "open_at_end": 96, "peak_open": 96 } }
        ]
    });
    let hold = judge::check(&plan.checks[0], &report);
    assert!(hold.passed && hold.phase == "hold", "the run dropped 4, the hold none: {hold:?}");
    let whole = judge::check(&plan.checks[1], &report);
    assert!(!whole.passed && whole.phase == "run");
    // Second 1: only "soon" is due; second 3: "late" comes first in file order.
    assert_eq!(judge::abort(&plan.checks, &report, 1).map(|a| a.check), Some("soon".into()));
    assert_eq!(judge::abort(&plan.checks, &report, 3).map(|a| a.check), Some("late".into()));
    let a = judge::abort(&plan.checks, &report, 1).unwrap();
    assert_eq!((a.at_s, a.observed), (1, 4.0));
    let mut fine = report.clone();
    fine["connections"]["dropped"] = 0.into();
    assert_eq!(judge::abort(&plan.checks, &fine, 4), None);
    // The check that stopped the run keeps the failure it stopped it with.
    let judged = judge::checks_after_abort(&plan.checks, &fine, Some(&a));
    assert_eq!(judged.iter().map(|c| c.passed).collect::<Vec<_>>(), [true, true, false]);
    assert_eq!(judged[2].observed, Some(4.0));
    // A phase the run never reached has no data.
    let mut short = report.clone();
    short["phases"].as_array_mut().unwrap().pop();
    let none = judge::check(&plan.checks[0], &short);
    assert!(none.observed.is_none() && none.detail.unwrap().contains("never reached phase \"hold\""));
}

#[test]
fn a_defence_check_says_whether_the_defence_held_or_is_missing() {
    let plan = with(
        "connect_rate = 100\nhold = \"1s\"",
        "[[checks]]\nname = \"forged\"\nexpr = \"connections.refused.401.count == 10\"\ndefence = \"forged tokens \
         refused (401)\"",
    )
    .unwrap();
    let e =
        with("connect_rate = 100\nhold = \"1s\"", "[[checks]]\nexpr = \"connections.failed == 0\"\ndefence = \" \"")
            .unwrap_err();
    assert!(e.to_string().contains("defence: say which defence it proves"), "{e}");
    let titles = |refused: u64| {
        let mut report = serde_json::json!({
            "connections": { "attempted": 10, "established": 0, "failed": refused, "dropped": 0, "open_at_end": 0, "peak_open": 0 },
        });
        if refused > 0 {
            report["connections"]["refused"] =
                serde_json::json!({ "401": { "count": refused, "retry_after_count": 0 } });
        }
        let checks: Vec<_> = plan.checks.iter().map(|c| judge::check(c, &report)).collect();
        assert_eq!(checks[0].defence.as_deref(), Some("forged tokens refused (401)"));
        judge::write_verdict(
            &mut report,
            &loadgen_engine::report::Verdict {
                outcome: loadgen_engine::report::Outcome::Pass,
                checks,
                invalid_because: Vec::new(),
            },
        );
        judge::findings(&report, &[]).iter().map(|f| f["title"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert!(titles(10).contains(&"defence held: forged tokens refused (401)".to_string()), "{:?}", titles(10));
    assert_eq!(titles(0)[0], "defence missing: forged tokens refused (401)");
}

#[test]
fn connection_server_is_a_json_pointer_compiled_for_the_engine() {
    let set = |v: &str| vec![format!("connection.server={v}")];
    let plan = load(SMOKE, "s.toml", &set("\"/worker\"")).unwrap();
    let want = loadgen_engine::server_id::ServerIdPath::new("/worker").unwrap();
    assert_eq!(plan.server_id, Some(want));
    assert_eq!(load(SMOKE, "s.toml", &[]).unwrap().server_id, None);
    let e = load(SMOKE, "s.toml", &set("worker")).unwrap_err().to_string();
    assert!(e.contains("connection.server: \"worker\" is not a JSON pointer"), "{e}");
}
