//! Scheduled reminders: `POST /reminders` (a reminder or a series of them to any
//! channel), `POST /shifts` (the seed's "40 minutes before a shift", to `unit:N`), `GET
//! /reminders` (how many wait), and the scheduler task every worker runs.
//!
//! Reminders live in Redis, not in a worker: each occurrence is one member of the
//! sorted set [`REMINDERS_KEY`], scored by its due time in µs since the Unix epoch, so
//! any worker, a restarted one too, can fire it. Every worker's scheduler claims what
//! is due in one Lua script: ZRANGEBYSCORE, then per member ZREM, `INCR seq:<channel>`
//! and PUBLISH (and the pending list for `person:*`, as [`crate::publish`] does). The
//! claim and the publish are one atomic step, so exactly one worker fires each
//! occurrence, and a worker that dies in between cannot lose it.
//!
//! A fired reminder is an ordinary envelope whose `sent_us` is its **due time**, not
//! the time it was fired, and which ends with `"reminder":true`: a client's delivery
//! latency is the reminder's lateness plus the fan-out. The worker that fired it records
//! the lateness (fire time − due time) in the histogram
//! `reminder_lateness_seconds`, and counts it in `reminders_late_total` when it is over
//! [`crate::WorkerConfig::reminder_late_after`].
//!
//! The scheduler sleeps until the earliest due time, at most [`POLL`] (reminders
//! scheduled through another worker are seen within that), and is woken at once by a
//! reminder scheduled through its own worker. Under `late-reminders=MS` every worker
//! claims only what has been due for MS milliseconds, so each reminder fires MS late.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::envelope::{EnvelopeParts, channel_id};
use crate::metrics::Metrics;
use crate::publish::{PublishError, Publisher, check_channel};
use crate::worker::State;

/// The sorted set of reminder occurrences (score: due time, µs since the epoch).
pub const REMINDERS_KEY: &str = "loadgen-target:{reminders}";
/// The counter that numbers reminder requests (in the set's hash slot).
pub const REMINDER_ID_KEY: &str = "loadgen-target:{reminders}:id";
/// Most occurrences in one series.
pub const MAX_COUNT: u32 = 1000;
/// How far ahead a reminder may be due.
pub const MAX_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far in the past an absolute due time may be (it then fires at once).
pub const MAX_PAST: Duration = Duration::from_secs(60);
/// A shift's reminder, by default: 40 minutes before it starts.
pub const DEFAULT_REMIND_BEFORE_MS: u64 = 40 * 60 * 1000;
/// The longest a scheduler sleeps between looks at the set.
pub const POLL: Duration = Duration::from_millis(50);
/// Most occurrences one script call fires.
const FIRE_BATCH: usize = 500;

// KEYS: the reminders set. ARGV: fire what is due at or before this (µs), at most this
// many, keep-seconds of person channels (0: not kept), PUBLISH or SPUBLISH. Returns the next due score (or
// '') followed by the due time of each occurrence fired ('' for an unreadable member,
// removed).
const FIRE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local keep = tonumber(ARGV[3])
local out = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local ok, r = pcall(cjson.decode, m)
  if ok and type(r) == 'table' and type(r.ch) == 'string' and type(r.due_us) == 'string'
     and type(r.head) == 'string' and type(r.mid) == 'string' and type(r.tail) == 'string' then
    local seq = redis.call('INCR', 'seq:' .. r.ch) - 1
    local text = r.head .. string.format('%d', seq) .. r.mid .. r.due_us .. r.tail
    redis.call(ARGV[4], r.ch, text)
    if keep > 0 and string.sub(r.ch, 1, 7) == 'person:' then
      local p = 'pending:' .. r.ch
      redis.call('RPUSH', p, text)
      redis.call('LTRIM', p, -1000, -1)
      redis.call('EXPIRE', p, keep)
    end
    out[#out + 1] = r.due_us
  else
    out[#out + 1] = ''
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
table.insert(out, 1, nxt[2] or '')
return out
";

// In a cluster, the channels are in other slots than the set: the claim is one script
// (KEYS: the set; ARGV: due up to, at most this many), returning the next due score (or
// '') and the members claimed, which are then published one by one.
const CLAIM: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZREM', KEYS[1], m) end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
table.insert(due, 1, nxt[2] or '')
return due
";

/// `POST /reminders` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReminderRequest {
    channel: String,
    due_unix_ms: Option<u64>,
    in_ms: Option<u64>,
    body: Option<Box<RawValue>>,
    count: Option<u32>,
    every_ms: Option<u64>,
    #[serde(default)]
    critical: bool,
}

/// `POST /shifts` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftRequest {
    unit: String,
    starts_in_ms: Option<u64>,
    starts_unix_ms: Option<u64>,
    remind_before_ms: Option<u64>,
    body: Option<Box<RawValue>>,
    #[serde(default)]
    critical: bool,
}

/// A validated schedule: `count` occurrences, the first at `first_due_us`, then every
/// `every_us`.
#[derive(Debug)]
pub struct Schedule {
    pub channel: String,
    pub first_due_us: u64,
    pub every_us: u64,
    pub count: u32,
    pub body: Option<Box<RawValue>>,
    pub critical: bool,
    /// For a shift: when it starts (µs since the epoch).
    pub shift_starts_us: Option<u64>,
}

impl Schedule {
    /// Occurrence `i`'s due time.
    pub fn due_us(&self, i: u32) -> u64 {
        self.first_due_us + self.every_us * u64::from(i)
    }
}

/// The answer to a scheduling request.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Scheduled {
    /// The request's number; occurrence i is member `ID.i` of the set.
    pub id: u64,
    pub channel: String,
    pub channel_id: u32,
    pub count: u32,
    /// Due times in µs since the epoch: the `sent_us` of the first and last envelopes.
    pub first_due_us: u64,
    pub last_due_us: u64,
    pub every_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_starts_us: Option<u64>,
}

fn object<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str, example: &str) -> Result<T, String> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(format!("invalid {what} request: expected a JSON object such as {example}"));
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid {what} request: {e}"))
}

fn ms_to_us(ms: u64, what: &str) -> Result<u64, String> {
    ms.checked_mul(1000).ok_or_else(|| format!("{what} {ms} is out of range"))
}

/// Checks that `due_us` is neither too far back nor too far ahead of `now_us`.
fn check_due(due_us: u64, now_us: u64, what: &str) -> Result<(), String> {
    if due_us.saturating_add(MAX_PAST.as_micros() as u64) < now_us {
        return Err(format!("{what} is more than {} s in the past", MAX_PAST.as_secs()));
    }
    if due_us > now_us.saturating_add(MAX_AHEAD.as_micros() as u64) {
        return Err(format!("{what} is more than {} days ahead", MAX_AHEAD.as_secs() / 86_400));
    }
    Ok(())
}

/// Reads and validates a `POST /reminders` body at `now_us`; the error is one line.
pub fn parse_reminder(body: &[u8], now_us: u64) -> Result<Schedule, String> {
    let req: ReminderRequest = object(body, "reminder", r#"{"channel":"unit:7","in_ms":1000}"#)?;
    check_channel(&req.channel)?;
    let first_due_us = match (req.due_unix_ms, req.in_ms) {
        (Some(at), None) => ms_to_us(at, "due_unix_ms")?,
        (None, Some(after)) => now_us.saturating_add(ms_to_us(after, "in_ms")?),
        (Some(_), Some(_)) => return Err("give the due time once: due_unix_ms or in_ms, not both".into()),
        (None, None) => return Err("missing the due time: due_unix_ms (absolute) or in_ms (from now)".into()),
    };
    check_due(first_due_us, now_us, "the due time")?;
    let count = req.count.unwrap_or(1);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(format!("count {count} is outside 1..={MAX_COUNT}"));
    }
    let every_us = match req.every_ms {
        Some(0) => return Err("every_ms must be at least 1".into()),
        Some(ms) => ms_to_us(ms, "every_ms")?,
        None if count > 1 => return Err(format!("a series of {count} needs every_ms, the time between them")),
        None => 0,
    };
    let last = every_us.checked_mul(u64::from(count - 1)).and_then(|span| span.checked_add(first_due_us));
    match last {
        Some(last) => check_due(last, now_us, "the last occurrence")?,
        None => return Err("count × every_ms is out of range".into()),
    }
    Ok(Schedule {
        channel: req.channel,
        first_due_us,
        every_us,
        count,
        body: req.body,
        critical: req.critical,
        shift_starts_us: None,
    })
}

/// Reads and validates a `POST /shifts` body at `now_us`: one reminder to `unit:U`,
/// `remind_before_ms` (default 40 minutes) before the shift starts, or at once when
/// that moment has passed. The default body is
/// `{"shift":{"unit":U,"starts_unix_ms":S},"remind_before_ms":B}`.
pub fn parse_shift(body: &[u8], now_us: u64) -> Result<Schedule, String> {
    let req: ShiftRequest = object(body, "shift", r#"{"unit":"7","starts_in_ms":60000,"remind_before_ms":40000}"#)?;
    if req.unit.is_empty() {
        return Err("unit must not be empty".into());
    }
    let channel = format!("unit:{}", req.unit);
    check_channel(&channel)?;
    let starts_us = match (req.starts_unix_ms, req.starts_in_ms) {
        (Some(at), None) => ms_to_us(at, "starts_unix_ms")?,
        (None, Some(after)) => now_us.saturating_add(ms_to_us(after, "starts_in_ms")?),
        (Some(_), Some(_)) => return Err("give the start once: starts_unix_ms or starts_in_ms, not both".into()),
        (None, None) => return Err("missing the start: starts_unix_ms (absolute) or starts_in_ms (from now)".into()),
    };
    if starts_us < now_us {
        return Err("the shift has already started".into());
    }
    check_due(starts_us, now_us, "the shift's start")?;
    let before_ms = req.remind_before_ms.unwrap_or(DEFAULT_REMIND_BEFORE_MS);
    let first_due_us = starts_us.saturating_sub(ms_to_us(before_ms, "remind_before_ms")?).max(now_us);
    let body = match req.body {
        Some(b) => b,
        None => {
            let default = serde_json::json!({
                "shift": {"unit": req.unit, "starts_unix_ms": starts_us / 1000},
                "remind_before_ms": before_ms,
            });
            RawValue::from_string(default.to_string()).map_err(|e| format!("shift body: {e}"))?
        }
    };
    Ok(Schedule {
        channel,
        first_due_us,
        every_us: 0,
        count: 1,
        body: Some(body),
        critical: req.critical,
        shift_starts_us: Some(starts_us),
    })
}

/// One occurrence as stored: what the fire script needs to publish it.
#[derive(Debug, Serialize, Deserialize)]
struct Member<'a> {
    id: String,
    #[serde(borrow)]
    ch: std::borrow::Cow<'a, str>,
    due_us: String,
    #[serde(borrow)]
    head: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    mid: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    tail: std::borrow::Cow<'a, str>,
}

/// Stores every occurrence of `s` (envelopes published by `worker`).
pub async fn schedule(publisher: &Publisher, s: &Schedule, worker: u32) -> Result<Scheduled, PublishError> {
    let mut conn = publisher.connection(REMINDERS_KEY).await?;
    let id: u64 = match redis::cmd("INCR").arg(REMINDER_ID_KEY).query_async(&mut conn).await {
        Ok(id) => id,
        Err(e) => return Err(publisher.failed(e).await),
    };
    let mut parts = EnvelopeParts::new(&s.channel, worker, s.body.as_deref());
    if s.critical {
        parts = parts.critical();
    }
    let parts = parts.reminder();
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(REMINDERS_KEY);
    for i in 0..s.count {
        let due = s.due_us(i);
        let member = Member {
            id: format!("{id}.{i}"),
            ch: s.channel.as_str().into(),
            due_us: due.to_string(),
            head: parts.head.as_str().into(),
            mid: parts.mid.as_str().into(),
            tail: parts.tail.as_str().into(),
        };
        zadd.arg(due).arg(serde_json::to_string(&member).expect("a member serializes"));
    }
    if let Err(e) = zadd.query_async::<u64>(&mut conn).await {
        return Err(publisher.failed(e).await);
    }
    Ok(Scheduled {
        id,
        channel: s.channel.clone(),
        channel_id: channel_id(&s.channel),
        count: s.count,
        first_due_us: s.first_due_us,
        last_due_us: s.due_us(s.count - 1),
        every_ms: s.every_us / 1000,
        shift_starts_us: s.shift_starts_us,
    })
}

/// `GET /reminders`: how many occurrences wait, and the earliest due time.
pub async fn waiting(publisher: &Publisher) -> Result<serde_json::Value, PublishError> {
    let mut conn = publisher.connection(REMINDERS_KEY).await?;
    let mut pipe = redis::pipe();
    pipe.cmd("ZCARD").arg(REMINDERS_KEY).cmd("ZRANGE").arg(REMINDERS_KEY).arg(0).arg(0).arg("WITHSCORES");
    let (n, first): (u64, Vec<(String, f64)>) = match pipe.query_async(&mut conn).await {
        Ok(r) => r,
        Err(e) => return Err(publisher.failed(e).await),
    };
    Ok(serde_json::json!({ "scheduled": n, "next_due_us": first.first().map(|(_, s)| *s as u64) }))
}

/// What one fire call did.
#[derive(Debug, Default)]
struct Fired {
    /// Due times of the occurrences fired.
    due_us: Vec<u64>,
    /// Unreadable members removed.
    unreadable: usize,
    /// The earliest due time left.
    next_us: Option<u64>,
}

async fn fire(state: &State, up_to_us: u64) -> Result<Fired, PublishError> {
    if state.config.redis_cluster.is_some() {
        return claim_then_publish(state, up_to_us).await;
    }
    let publisher = &state.publisher;
    let mut conn = publisher.connection(REMINDERS_KEY).await?;
    let keep = state.config.pending_ttl.as_secs();
    let script = redis::Script::new(FIRE);
    let mut inv = script.key(REMINDERS_KEY);
    inv.arg(up_to_us).arg(FIRE_BATCH).arg(keep).arg(publisher.pubsub().publish_command());
    let out: Vec<String> = match inv.invoke_async(&mut conn).await {
        Ok(out) => out,
        Err(e) => return Err(publisher.failed(e).await),
    };
    let mut fired = Fired::default();
    let mut it = out.into_iter();
    fired.next_us = it.next().and_then(|s| s.parse::<f64>().ok()).map(|s| s as u64);
    for due in it {
        match due.parse::<u64>() {
            Ok(d) => fired.due_us.push(d),
            Err(_) => fired.unreadable += 1,
        }
    }
    Ok(fired)
}

/// [`fire`] in a cluster: the claim is atomic (exactly one worker gets each member),
/// the publish that follows is a call of its own, so a worker that dies in between
/// loses what it claimed (at most once, logged and counted).
async fn claim_then_publish(state: &State, up_to_us: u64) -> Result<Fired, PublishError> {
    let publisher = &state.publisher;
    let mut conn = publisher.connection(REMINDERS_KEY).await?;
    let script = redis::Script::new(CLAIM);
    let mut inv = script.key(REMINDERS_KEY);
    inv.arg(up_to_us).arg(FIRE_BATCH);
    let out: Vec<String> = match inv.invoke_async(&mut conn).await {
        Ok(out) => out,
        Err(e) => return Err(publisher.failed(e).await),
    };
    let mut fired = Fired::default();
    let mut it = out.into_iter();
    fired.next_us = it.next().and_then(|s| s.parse::<f64>().ok()).map(|s| s as u64);
    for member in it {
        let Ok(m) = serde_json::from_str::<Member>(&member) else {
            fired.unreadable += 1;
            continue;
        };
        let Ok(due) = m.due_us.parse::<u64>() else {
            fired.unreadable += 1;
            continue;
        };
        let ch = m.ch.to_string();
        let parts = EnvelopeParts { head: m.head.to_string(), mid: m.mid.to_string(), tail: m.tail.to_string() };
        match publisher.publish_parts(&ch, &parts, &[due]).await {
            Ok(_) => fired.due_us.push(due),
            Err(e) => {
                Metrics::inc(&state.metrics.reminders_lost);
                tracing::error!(reminder = %m.id, channel = %ch, error = %e, "reminders: claimed but not published: lost");
            }
        }
    }
    Ok(fired)
}

/// The scheduler of one worker: runs until the worker stops.
pub(crate) async fn run(state: Arc<State>) {
    let mut shutdown = state.shutdown.clone();
    let mut changes = state.faults.changes();
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let late_us = state.faults.get().late_reminders.map_or(0, |d| d.as_micros() as u64);
        let wait = match fire(&state, crate::unix_us().saturating_sub(late_us)).await {
            Ok(fired) => {
                failing = false;
                backoff = Duration::from_millis(100);
                record(&state, &fired);
                if fired.due_us.len() + fired.unreadable >= FIRE_BATCH {
                    continue;
                }
                let until_next = |n: u64| Duration::from_micros((n + late_us).saturating_sub(crate::unix_us()));
                fired.next_us.map_or(POLL, until_next).min(POLL)
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "reminders: cannot fire; retrying with backoff");
                }
                failing = true;
                let b = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                b
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.reminders_wake.notified() => {}
            _ = changes.changed() => {}
            _ = crate::worker::stopped(&mut shutdown) => return,
        }
    }
}

fn record(state: &State, fired: &Fired) {
    if fired.unreadable > 0 {
        tracing::warn!(count = fired.unreadable, key = REMINDERS_KEY, "reminders: unreadable members removed");
    }
    let now = crate::unix_us();
    let m = &state.metrics;
    let late_after = state.config.reminder_late_after.as_micros() as u64;
    for due in &fired.due_us {
        let lateness = now.saturating_sub(*due);
        Metrics::inc(&m.reminders_fired);
        m.reminder_lateness.observe(lateness);
        if lateness > late_after {
            Metrics::inc(&m.reminders_late);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000_000;

    fn refused(f: fn(&[u8], u64) -> Result<Schedule, String>, body: &str) -> String {
        let e = f(body.as_bytes(), NOW).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn reminders_are_validated_with_one_line_reasons() {
        let s = parse_reminder(br#"{"channel":"unit:7","in_ms":1500,"body":{"t":"go"}}"#, NOW).unwrap();
        assert_eq!((s.first_due_us, s.count, s.every_us), (NOW + 1_500_000, 1, 0));
        let s = parse_reminder(br#"{"channel":"b","due_unix_ms":1800000005000,"count":3,"every_ms":10}"#, NOW).unwrap();
        assert_eq!((s.due_us(0), s.due_us(2)), (NOW + 5_000_000, NOW + 5_020_000));
        let r = |b| refused(parse_reminder, b);
        assert!(r("[]").contains("expected a JSON object"));
        assert!(r("{").starts_with("invalid reminder request: EOF"));
        assert!(r(r#"{"channel":"a","in_ms":1,"colour":2}"#).contains("unknown field `colour`"));
        assert!(r(r#"{"channel":"a"}"#).contains("missing the due time"));
        assert!(r(r#"{"channel":"a","in_ms":1,"due_unix_ms":1}"#).contains("not both"));
        assert!(r(r#"{"channel":"a","in_ms":-1}"#).contains("invalid value"));
        assert!(r(r#"{"channel":"a","due_unix_ms":1}"#).contains("in the past"));
        assert!(r(r#"{"channel":"a","in_ms":99999999999}"#).contains("days ahead"));
        assert!(r(r#"{"channel":"a","in_ms":18446744073709551615}"#).contains("out of range"));
        assert!(r(r#"{"channel":"a","in_ms":1,"count":0}"#).contains("outside 1..=1000"));
        assert!(r(r#"{"channel":"a","in_ms":1,"count":2}"#).contains("needs every_ms"));
        assert!(r(r#"{"channel":"a","in_ms":1,"count":2,"every_ms":0}"#).contains("at least 1"));
        assert!(r(r#"{"channel":"a","in_ms":1,"count":1000,"every_ms":9999999999}"#).contains("last occurrence"));
        assert!(r(r#"{"channel":"loadgen-target:x","in_ms":1}"#).contains("reserved"));
        assert!(r(r#"{"channel":"","in_ms":1}"#).starts_with("invalid channel"));
    }

    #[test]
    fn shifts_remind_before_they_start() {
        let s = parse_shift(br#"{"unit":"7","starts_in_ms":1000,"remind_before_ms":400}"#, NOW).unwrap();
        assert_eq!(
            (s.channel.as_str(), s.first_due_us, s.shift_starts_us),
            ("unit:7", NOW + 600_000, Some(NOW + 1_000_000))
        );
        let body: serde_json::Value = serde_json::from_str(s.body.unwrap().get()).unwrap();
        assert_eq!(body["shift"]["starts_unix_ms"], (NOW + 1_000_000) / 1000);
        let s = parse_shift(br#"{"unit":"7","starts_in_ms":1000}"#, NOW).unwrap();
        assert_eq!(s.first_due_us, NOW, "40 minutes before has passed: at once");
        let r = |b| refused(parse_shift, b);
        assert!(r(r#"{"starts_in_ms":1}"#).contains("missing field `unit`"));
        assert!(r(r#"{"unit":"","starts_in_ms":1}"#).contains("empty"));
        assert!(r(r#"{"unit":"7"}"#).contains("missing the start"));
        assert!(r(r#"{"unit":"7","starts_unix_ms":1}"#).contains("already started"));
        assert!(r(r#"{"unit":"a\nb","starts_in_ms":1}"#).starts_with("invalid channel"));
    }

    #[test]
    fn members_carry_what_the_script_publishes() {
        let parts = EnvelopeParts::new("unit:7", 1, None).reminder();
        let m = Member {
            id: "3.0".into(),
            ch: "unit:7".into(),
            due_us: NOW.to_string(),
            head: parts.head.as_str().into(),
            mid: parts.mid.as_str().into(),
            tail: parts.tail.as_str().into(),
        };
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        let text = format!(
            "{}{}{}{}{}",
            v["head"].as_str().unwrap(),
            4,
            v["mid"].as_str().unwrap(),
            v["due_us"].as_str().unwrap(),
            v["tail"].as_str().unwrap()
        );
        assert_eq!(text, parts.assemble(4, NOW));
        assert!(text.ends_with(r#""body":null,"reminder":true}"#));
    }
}
