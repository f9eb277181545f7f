//! Tests of recorder, error table, collector and saturation verdicts on known values
//! (no clocks, no timing-dependent assertions), and of the /proc readers.

use std::collections::HashSet;
use std::time::Duration;

use super::procfs::{self, CpuTimes};
use super::*;

/// A deterministic value for worker `w`, second `s`, sample `i` of `metric`.
fn value(w: u64, s: u64, i: u64, metric: Metric) -> u64 {
    let x = (w * 7_919 + s * 104_729 + i * 2_654_435_761 + metric as u64 * 31).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // Spread over 1 µs .. ~16 s, a few samples above the one-hour top.
    if i.is_multiple_of(997) { 5_000_000_000 + x % 1_000 } else { 1 + (x >> 40) % (1 << (4 + (x % 21))) }
}

fn samples(w: u64, s: u64) -> u64 {
    200 + 50 * w + 30 * s
}

#[test]
fn merged_percentiles_equal_those_of_one_histogram_fed_all_values() {
    const SECONDS: u64 = 4;
    let (collector, reporters) = channel(2, SaturationPolicy::default());
    std::thread::scope(|scope| {
        for mut reporter in reporters {
            scope.spawn(move || {
                let w = reporter.worker() as u64;
                let mut rec = Recorder::new();
                for s in 0..SECONDS {
                    for i in 0..samples(w, s) {
                        for m in Metric::ALL {
                            rec.record(m, value(w, s, i, m));
                        }
                        rec.message_sent(10);
                    }
                    rec.error(if s.is_multiple_of(2) { "io" } else { "masked_frame" });
                    if s + 1 < SECONDS {
                        reporter.send(&mut rec, s).unwrap();
                    }
                }
                reporter.finish(&mut rec, SECONDS - 1).unwrap();
            });
        }
        let run = collector.run();
        assert_eq!(run.seconds.len() as u64, SECONDS);
        let mut whole: [Histogram<u64>; Metric::COUNT] = std::array::from_fn(|_| histogram());
        for (s, second) in run.seconds.iter().enumerate() {
            let s = s as u64;
            assert_eq!(second.second, s);
            let mut per_second: [Histogram<u64>; Metric::COUNT] = std::array::from_fn(|_| histogram());
            for w in 0..2 {
                for i in 0..samples(w, s) {
                    for m in Metric::ALL {
                        per_second[m as usize].saturating_record(value(w, s, i, m));
                        whole[m as usize].saturating_record(value(w, s, i, m));
                    }
                }
            }
            let expected = samples(0, s) + samples(1, s);
            assert_eq!(second.messages.sent, expected);
            assert_eq!(second.messages.bytes_sent, expected * 10);
            let lat = &second.latency_us;
            assert_eq!(lat.connect, Some(Percentiles::from_histogram(&per_second[0])));
            assert_eq!(lat.delivery, Some(Percentiles::from_histogram(&per_second[Metric::Delivery as usize])));
            assert_eq!(lat.message_rtt.unwrap().count, expected);
            let lag = Percentiles::from_histogram(&per_second[Metric::ScheduleLag as usize]);
            assert_eq!(second.schedule_lag_us, Some(lag));
            let kind = if s.is_multiple_of(2) { "io" } else { "masked_frame" };
            assert_eq!(second.errors.get(kind), Some(&2));
        }
        for m in Metric::ALL {
            let h = &whole[m as usize];
            assert_eq!(Percentiles::from_histogram(run.histogram(m)), Percentiles::from_histogram(h), "{m:?}");
            // Values above one hour saturate at the top instead of being dropped or clamped low.
            assert!(h.max() >= HISTOGRAM_MAX_US && run.histogram(m).max() == h.max());
        }
        assert_eq!(run.totals.messages_sent, (0..SECONDS).map(|s| samples(0, s) + samples(1, s)).sum::<u64>());
        assert_eq!(run.errors.get("io"), Some(&4));
        assert_eq!(run.errors.get("masked_frame"), Some(&4));
    });
}

#[test]
fn a_worker_finishing_early_does_not_stall_the_seconds() {
    let (mut c, _reporters) = channel(2, SaturationPolicy::default());
    let mut r0 = Recorder::new();
    let mut r1 = Recorder::new();
    c.accept(1, r1.snapshot(0));
    assert!(c.seconds().is_empty(), "second 0 waits for worker 0");
    r0.connection_attempted();
    c.accept(0, r0.snapshot(0));
    assert_eq!(c.seconds().len(), 1);
    c.accept(0, r0.snapshot(1));
    c.worker_finished(0);
    assert_eq!(c.seconds().len(), 1, "second 1 still waits for worker 1");
    for s in 1..6 {
        r1.connection_attempted();
        c.accept(1, r1.snapshot(s));
        assert_eq!(c.seconds().len() as u64, s + 1, "second {s} is emitted as soon as worker 1 reports it");
    }
    let run = c.finish();
    assert_eq!(run.seconds.iter().map(|s| s.connections.attempted).collect::<Vec<_>>(), [1, 1, 1, 1, 1, 1]);
}

#[test]
fn a_dropped_reporter_counts_as_finished() {
    let (collector, mut reporters) = channel(2, SaturationPolicy::default());
    let early = reporters.pop().unwrap();
    let mut late = reporters.pop().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut rec = Recorder::new();
            rec.connection_attempted();
            let mut early = early;
            early.send(&mut rec, 0).unwrap();
            drop(early); // a worker that returned (or panicked) without finish()
        });
        scope.spawn(move || {
            let mut rec = Recorder::new();
            for s in 0..10 {
                rec.connection_attempted();
                late.send(&mut rec, s).unwrap();
            }
            late.finish(&mut rec, 10).unwrap();
        });
        let run = collector.run();
        assert_eq!(run.seconds.len(), 11);
        assert_eq!(run.totals.attempted, 11);
    });
}

#[test]
fn gaps_are_empty_seconds_and_late_snapshots_land_in_the_first_open_second() {
    let (mut c, _reporters) = channel(1, SaturationPolicy::default());
    let mut r = Recorder::new();
    r.connection_established();
    r.connection_established();
    c.accept(0, r.snapshot(0));
    r.connection_closed();
    c.accept(0, r.snapshot(3));
    let s = c.seconds();
    assert_eq!(s.len(), 4);
    assert_eq!(s.iter().map(|s| s.connections.open).collect::<Vec<_>>(), [2, 2, 2, 1]);
    assert_eq!(s[1].connections.peak_open, 2, "a second without report carries the open count");
    assert_eq!(s[3].connections.closed, 1);
    // Second 1 was emitted long ago: the late data lands in second 4 and in the totals.
    r.message_received(5);
    c.accept(0, r.snapshot(1));
    let run = c.finish();
    assert_eq!(run.seconds.len(), 5);
    assert_eq!(run.seconds[4].messages.received, 1);
    assert_eq!(run.totals.messages_received, 1);
    assert_eq!(run.totals.bytes_received, 5);
    assert_eq!((run.peak_open, run.open_at_end), (2, 1));
}

#[test]
fn open_and_peak_sum_over_workers() {
    let (mut c, _reporters) = channel(2, SaturationPolicy::default());
    let (mut a, mut b) = (Recorder::new(), Recorder::new());
    for _ in 0..3 {
        a.connection_attempted();
        a.connection_established();
    }
    a.connection_closed();
    b.connection_attempted();
    b.connection_failed();
    b.connection_attempted();
    b.connection_established();
    c.accept(0, a.snapshot(0));
    c.accept(1, b.snapshot(0));
    let run = c.finish();
    let conn = run.seconds[0].connections;
    assert_eq!((conn.attempted, conn.established, conn.failed, conn.closed), (5, 4, 1, 1));
    assert_eq!((conn.open, conn.peak_open), (3, 4));
    assert_eq!((run.peak_open, run.open_at_end), (4, 3));
}

#[test]
fn snapshots_recycle_their_buffers() {
    let mut r = Recorder::new();
    let mut seen = HashSet::new();
    for s in 0..20 {
        r.record(Metric::MessageRtt, 100 + s);
        r.error("io");
        r.message_sent(3);
        let snap = r.snapshot(s);
        assert_eq!(snap.histogram(Metric::MessageRtt).len(), 1, "each interval holds only its own samples");
        assert_eq!(snap.counters().messages_sent, 1);
        assert_eq!(snap.errors().get("io"), 1);
        seen.insert(snap.buffer_addr());
        r.recycle(snap);
    }
    assert_eq!(seen.len(), 2, "two interval buffers alternate; none is allocated after the first");

    // The same through the channel: the collector empties buffers and sends them back.
    let (mut c, mut reporters) = channel(1, SaturationPolicy::default());
    let mut rep = reporters.pop().unwrap();
    let mut r = Recorder::new();
    let initial: HashSet<usize> = r.buffer_addrs().into_iter().collect();
    for s in 0..20 {
        r.record(Metric::Connect, 7);
        r.error("io");
        rep.send(&mut r, s).unwrap();
        assert!(c.step(Duration::ZERO));
        for addr in r.buffer_addrs().into_iter().filter(|&a| a != 0) {
            assert!(initial.contains(&addr), "second {s}: a buffer was allocated");
        }
    }
    let run = c.finish();
    assert_eq!(run.histogram(Metric::Connect).len(), 20);
    assert_eq!(run.errors.get("io"), Some(&20));
    assert!(run.seconds.iter().all(|s| s.latency_us.connect.unwrap().count == 1 && s.errors["io"] == 1));
}

#[test]
fn error_table_holds_64_names_and_counts_the_rest_as_other() {
    let names: Vec<&'static str> = (0..70).map(|i| &*Box::leak(format!("kind_{i}").into_boxed_str())).collect();
    let mut t = ErrorTable::new();
    for (i, &n) in names.iter().enumerate() {
        for _ in 0..=i {
            t.add(n, 1);
        }
    }
    assert_eq!(t.kinds(), ERROR_KINDS);
    for (i, &n) in names[..ERROR_KINDS].iter().enumerate() {
        assert_eq!(t.get(n), i as u64 + 1);
    }
    let overflow: u64 = (ERROR_KINDS as u64 + 1..=70).sum();
    assert_eq!(t.get(OTHER_ERROR), overflow);
    assert_eq!(t.total(), (1..=70).sum::<u64>(), "no error is lost");
    // Equal text behind another pointer is the same kind.
    let copy: &'static str = Box::leak(String::from("kind_3").into_boxed_str());
    t.add(copy, 10);
    assert_eq!(t.get("kind_3"), 14);
    assert_eq!(t.kinds(), ERROR_KINDS);
    t.clear();
    assert!(t.is_empty() && t.iter().next().is_none());

    // Through a recorder and the collector, `other` survives as a kind.
    let (mut c, _reporters) = channel(1, SaturationPolicy::default());
    let mut r = Recorder::new();
    for &n in &names {
        r.error(n);
    }
    c.accept(0, r.snapshot(0));
    let run = c.finish();
    assert_eq!(run.errors.len(), ERROR_KINDS + 1);
    assert_eq!(run.errors.get(OTHER_ERROR), Some(&(70 - ERROR_KINDS as u64)));
    assert_eq!(run.errors.values().sum::<u64>(), 70);
}

/// Runs one worker for three seconds: second 0 clean, second 1 with `spoil`, second 2 clean.
fn verdicts(policy: SaturationPolicy, spoil: impl Fn(&mut Recorder)) -> RunStats {
    let (mut c, _reporters) = channel(1, policy);
    let mut r = Recorder::new();
    for s in 0..3 {
        for _ in 0..100 {
            r.record(Metric::ScheduleLag, 50);
        }
        if s == 1 {
            spoil(&mut r);
        }
        c.accept(0, r.snapshot(s));
    }
    c.finish()
}

#[test]
fn lag_rules_need_enough_samples_to_judge_a_second() {
    // The first connection of a run, or a lone ping, is one sample: its lag alone does
    // not make the generator saturated. 19 samples are not judged, 20 are.
    let policy = SaturationPolicy::default();
    let few = |r: &mut Recorder, m: Metric, n: usize| (0..n).for_each(|_| r.record(m, 50_000));
    let lone = verdicts_empty(policy, |r| {
        few(r, Metric::ScheduleLag, 19);
        few(r, Metric::ConnectLag, 19);
    });
    assert!(lone.seconds.iter().all(|s| !s.saturated), "{:?}", lone.saturation_reasons());
    let enough = verdicts_empty(policy, |r| few(r, Metric::ConnectLag, 20));
    assert!(enough.seconds[1].saturated);
    assert!(
        enough.saturation_reasons()[0].contains("connect_lag") && enough.saturation_reasons()[0].contains("second 1")
    );
}

/// As [`verdicts`], without the clean background samples.
fn verdicts_empty(policy: SaturationPolicy, spoil: impl Fn(&mut Recorder)) -> RunStats {
    let (mut c, _reporters) = channel(1, policy);
    let mut r = Recorder::new();
    for s in 0..3 {
        if s == 1 {
            spoil(&mut r);
        }
        c.accept(0, r.snapshot(s));
    }
    c.finish()
}

#[test]
fn each_cause_flips_the_saturated_verdict_with_its_reason() {
    let clean = verdicts(SaturationPolicy::default(), |_| {});
    assert!(clean.seconds.iter().all(|s| !s.saturated && s.saturation_reasons.is_empty()));
    assert!(clean.saturation_reasons().is_empty());

    type Case = (&'static str, SaturationPolicy, fn(&mut Recorder));
    let cases: [Case; 5] = [
        ("schedule_lag: p99 2000 µs > 1000 µs", SaturationPolicy::default(), |r| {
            (0..10).for_each(|_| r.record(Metric::ScheduleLag, 2_000))
        }),
        (
            "schedule_lag: p99 600 µs > 500 µs (10% of the 5000 µs send interval)",
            SaturationPolicy { send_interval_us: Some(5_000), ..SaturationPolicy::default() },
            |r| (0..10).for_each(|_| r.record(Metric::ScheduleLag, 600)),
        ),
        ("connect_lag: p99 20015 µs > 10000 µs", SaturationPolicy::default(), |r| {
            (0..30).for_each(|_| r.record(Metric::ConnectLag, 20_000))
        }),
        ("cq_overflow: 3 completion-queue overflows", SaturationPolicy::default(), |r| r.cq_overflow(3)),
        ("buffer_ring_exhausted: 2 receives found the buffer ring empty", SaturationPolicy::default(), |r| {
            r.buffer_ring_exhausted(2)
        }),
    ];
    for (reason, policy, spoil) in cases {
        let run = verdicts(policy, spoil);
        let s = &run.seconds;
        assert!(!s[0].saturated && s[1].saturated && !s[2].saturated, "{reason}");
        assert_eq!(s[1].saturation_reasons, [reason]);
        let whole = run.saturation_reasons();
        assert_eq!(whole.len(), 1, "{whole:?}");
        let kind = reason.split(':').next().unwrap();
        assert!(whole[0].starts_with(kind) && whole[0].contains("in second 1"), "{whole:?}");
    }
    // 10% of a long interval is above 1 ms: the 1 ms bound applies.
    let policy = SaturationPolicy { send_interval_us: Some(1_000_000), ..SaturationPolicy::default() };
    assert_eq!(policy.lag_threshold_us(), 1_000);
    assert_eq!(SaturationPolicy { send_interval_us: Some(0), ..policy }.lag_threshold_us(), 1_000);
}

#[test]
fn proc_parsers_read_fixed_text() {
    let stat = "4242 (we ird) name) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0 100 200 300";
    assert_eq!(procfs::parse_cpu_ticks(stat), Some(325));
    assert_eq!(procfs::parse_cpu_ticks("garbage"), None);
    let status = "Name:\tloadgen\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
    assert_eq!(procfs::parse_status_bytes(status, "VmHWM:"), Some(2048 * 1024));
    assert_eq!(procfs::parse_status_bytes(status, "VmRSS:"), Some(1024 * 1024));
    assert_eq!(procfs::parse_status_bytes(status, "VmSwap:"), None);
    let a = CpuTimes::parse("cpu  100 0 50 800 10 5 20 15 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n").unwrap();
    assert_eq!(a, CpuTimes { softirq: 20, total: 1000 });
    let b = CpuTimes { softirq: 70, total: 1500 };
    assert_eq!(b.softirq_share_since(&a), Some(0.1));
    assert_eq!(a.softirq_share_since(&a), None);
}

#[test]
fn proc_readers_return_plausible_values_here() {
    let cpu = procfs::process_cpu_seconds().unwrap();
    assert!(cpu >= 0.0 && cpu.is_finite());
    let rss = procfs::rss_bytes().unwrap();
    let peak = procfs::peak_rss_bytes().unwrap();
    assert!(rss > 0 && peak >= rss, "rss {rss}, peak {peak}");
    let times = CpuTimes::read().unwrap();
    assert!(times.total > 0 && times.softirq <= times.total);
}
