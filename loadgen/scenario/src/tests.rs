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
