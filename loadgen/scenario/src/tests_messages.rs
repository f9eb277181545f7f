//! `[messages]` (JSON pointers, a regex, markers) and the timeline's `inject` events:
//! compiled into the engine's shape and the director's actions, or refused on one line.

use std::time::Duration;

use loadgen_engine::payload_shape::MessageShape;

use super::*;

/// A scenario against a server of the user's, with `extra` appended.
fn foreign(extra: &str) -> String {
    format!(
        "name = \"foreign\"\n[target]\nurl = \"ws://127.0.0.1:9/chat\"\n[load]\nconnections = 2\nconnect_rate = 10\n\
         hold = \"1s\"\n[[groups]]\nname = \"readers\"\nconnections = 2\nsteps = [{{ do = \"ready\" }}]\n{extra}"
    )
}

fn error(text: &str) -> String {
    let e = load(text, "s.toml", &[]).expect_err("refused").to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

#[test]
fn a_regex_reads_text_messages_and_a_bad_one_is_refused() {
    let plan = load(
        &foreign("[messages]\nregex = 'seq=(?P<seq>\\d+) ts=(?P<sent>\\d+) room=(?P<stream>\\S+)'\n"),
        "s.toml",
        &[],
    )
    .expect("a regex");
    let Some(MessageShape::Text(text)) = &plan.message_shape else { panic!("{:?}", plan.message_shape) };
    assert_eq!(text.pattern(), r"seq=(?P<seq>\d+) ts=(?P<sent>\d+) room=(?P<stream>\S+)");
    for (messages, says) in [
        ("regex = '(?P<seq>\\d+'", "messages.regex: not a regular expression: unclosed group"),
        ("regex = '(?P<seq>\\d+)'", "messages.regex: no group (?P<sent>…)"),
        ("regex = '(?P<seq>\\d+) (?P<ts>\\d+)'", "the group (?P<ts>…) is not seq, sent or stream"),
        ("regex = '(?P<seq>\\d+) (?P<sent>\\d+)'\nseq = \"/seq\"", "messages.regex: its named groups say where"),
        ("regex = '(?P<seq>\\d+) (?P<sent>\\d+)'\nsent_unit = \"h\"", "messages.sent_unit: \"h\" is not us, ms or s"),
        ("sent = \"/ts\"", "messages.seq: give the seq and sent JSON pointers, or regex"),
        ("marker = true\nregex = '(?P<seq>1)(?P<sent>2)'", "messages.marker: markers carry their own"),
    ] {
        let e = error(&foreign(&format!("[messages]\n{messages}\n")));
        assert!(e.contains(says), "{messages}: {e}");
    }
    let plan = load(&foreign("[messages]\nmarker = true\n"), "s.toml", &[]).expect("markers");
    assert_eq!(plan.message_shape, Some(MessageShape::Marker));
}

#[test]
fn injected_markers_number_each_stream_from_zero_and_imply_marker_reading() {
    let events = "[[timeline]]\nat = \"2s\"\ndo = \"inject\"\nvia = \"http\"\npath = \"/post\"\n\
                  body = '{\"text\":\"{marker}\"}'\ncount = 100\ninterval = \"10ms\"\nstream = \"room1\"\n\
                  [[timeline]]\nat = \"1s\"\ndo = \"inject\"\nvia = \"redis\"\nurl = \"redis://:pw@127.0.0.1:6379/0\"\n\
                  channel = \"chat\"\ncount = 5\nstream = \"room1\"\n\
                  [[timeline]]\nat = \"3s\"\ndo = \"inject\"\nvia = \"http\"\nmethod = \"GET\"\n\
                  path = \"/say?m={marker}\"\nbody = { a = 1 }\n";
    let plan = load(&foreign(events), "s.toml", &[]).expect("injects");
    assert_eq!(plan.message_shape, Some(MessageShape::Marker), "inject implies marker reading");
    assert_eq!(
        plan.timeline[0].action,
        Action::Inject {
            via: InjectVia::Redis {
                addr: "127.0.0.1:6379".into(),
                user: None,
                password: Some("pw".into()),
                channel: "chat".into()
            },
            stream: "room1".into(),
            first_seq: 0,
            count: 5,
            interval: None,
            body: "{marker}".into(),
        }
    );
    assert_eq!(
        plan.timeline[1].action,
        Action::Inject {
            via: InjectVia::Http { method: "POST".into(), path: "/post".into() },
            stream: "room1".into(),
            first_seq: 5,
            count: 100,
            interval: Some(Duration::from_millis(10)),
            body: r#"{"text":"{marker}"}"#.into(),
        },
        "the stream's numbers go on from the earlier event"
    );
    let Action::Inject { first_seq, stream, body, .. } = &plan.timeline[2].action else { panic!() };
    assert_eq!((*first_seq, stream.as_str(), body.as_str()), (0, "inject", r#"{"a":1}"#));
    let inject = |keys: &str| foreign(&format!("[[timeline]]\nat = \"1s\"\ndo = \"inject\"\n{keys}\n"));
    for (keys, says) in [
        ("", "give via = \"http\""),
        ("via = \"smtp\"", "via: \"smtp\" is neither"),
        ("via = \"http\"", "give the path"),
        ("via = \"http\"\npath = \"/p\"\nbody = \"no marker\"", "body: put {marker} where the marker goes"),
        ("via = \"http\"\npath = \"/p\"\nchannel = \"c\"", "channel does not apply here"),
        ("via = \"redis\"\nchannel = \"c\"\npath = \"/p\"", "path does not apply here"),
        ("via = \"redis\"\nchannel = \"c\"", "give the url"),
        ("via = \"redis\"\nurl = \"redis://h:1\"", "give the channel"),
        ("via = \"redis\"\nchannel = \"c\"\nurl = \"http://h:1\"", "url: \"http://h:1\" is not a redis:// URL"),
        ("via = \"redis\"\nchannel = \"c\"\nurl = \"redis://h\"", "url: \"h\" is not HOST:PORT"),
        ("via = \"redis\"\nchannel = \"c\"\nurl = \"redis://pw@h:1\"", "is not [USER]:PASSWORD"),
        ("via = \"http\"\npath = \"/p\"\nstream = \"a.b\"", "stream: \"a.b\" is not a marker stream"),
        ("via = \"http\"\npath = \"/p\"\ncount = 0", "count: 1 to 1000000"),
    ] {
        let e = error(&inject(keys));
        assert!(e.contains("timeline[0] (do = \"inject\")") && e.contains(says), "{keys}: {e}");
    }
    let both = foreign(&format!("{events}[messages]\nseq = \"/seq\"\nsent = \"/ts\"\n"));
    assert!(error(&both).contains("messages: the timeline injects loadgen's markers"));
    let marked = foreign(&format!("{events}[messages]\nmarker = true\n"));
    assert_eq!(load(&marked, "s.toml", &[]).unwrap().message_shape, Some(MessageShape::Marker));
}
