//! Plans for fabricated hosts (the project's build machine and variations), parsers of
//! /proc formats, and one read of the real host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use super::host::{cap_eff, meminfo_bytes, parse_file_nr, parse_port_list, parse_port_range};
use super::*;

const GIB: u64 = 1 << 30;

/// The build machine: nofile 20,000 (hard, not raisable), 2 CPUs, 24 GiB, default ports.
fn this_machine() -> HostFacts {
    HostFacts {
        nofile_soft: 20_000,
        nofile_hard: 20_000,
        nr_open: Some(1 << 20),
        file_max: Some(2_466_174),
        files_in_use: Some(204),
        port_range: Some((32768, 60999)),
        reserved_ports: Some(Vec::new()),
        somaxconn: Some(4096),
        tcp_max_syn_backlog: Some(2048),
        mem_available: Some(23 * GIB),
        mem_total: Some(24 * GIB),
        cpus: Some(2),
        can_raise_nofile_hard: Some(false),
        kernel_release: "6.18.44".into(),
        unknown: Vec::new(),
    }
}

fn wide(mut f: HostFacts) -> HostFacts {
    f.port_range = Some((1024, 65535));
    f
}

fn target() -> SocketAddr {
    "127.0.0.1:8080".parse().unwrap()
}

fn loopback(connections: u64, workers: usize) -> LoadRequest {
    LoadRequest::new(connections, vec![target()], workers)
}

fn refused(r: Result<Plan, PreflightError>) -> Vec<Problem> {
    match r {
        Err(PreflightError::Refused(p)) => p,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ok(r: Result<Plan, PreflightError>) -> Plan {
    r.unwrap_or_else(|e| panic!("expected a plan, got {e}"))
}

fn v4(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

#[test]
fn ten_thousand_fit_one_ring_per_worker() {
    let p = ok(plan(&this_machine(), &loopback(10_000, 1)));
    assert_eq!((p.rings, p.per_ring_capacity, p.limited_by.as_str()), (1, 19_744, "RLIMIT_NOFILE 20000"));
    let p = ok(plan(&this_machine(), &loopback(10_000, 2)));
    assert_eq!(p.rings_per_worker, vec![1, 1]);
    assert_eq!(p.workers[0].ring_connections, vec![5_000]);
    assert_eq!((p.source_addr_count, p.usable_ports_per_source), (1, 14_116));
}

#[test]
fn thirty_thousand_need_two_rings() {
    let p = ok(plan(&this_machine(), &loopback(30_000, 1)));
    assert_eq!(p.rings, 2);
    assert_eq!(p.workers[0].ring_connections, vec![15_000, 15_000]);
    let p = ok(plan(&this_machine(), &loopback(30_000, 2)));
    assert_eq!((p.rings, p.rings_per_worker.clone()), (2, vec![1, 1]));
    // 30,000 to one target need 3 sources at 14,116 connect ports each.
    assert_eq!(p.targets[0].sources, 3);
}

#[test]
fn a_million_on_loopback_with_the_wide_range() {
    let p = ok(plan(&wide(this_machine()), &loopback(1_000_000, 2)));
    assert_eq!((p.rings, p.rings_per_worker.clone()), (52, vec![26, 26]));
    assert!(p.workers.iter().flat_map(|w| &w.ring_connections).all(|&c| c <= u64::from(p.per_ring_capacity)));
    assert_eq!(p.workers.iter().map(|w| w.connections).sum::<u64>(), 1_000_000);
    // Half of 64,512 per source: the kernel prefers one port parity for connects.
    assert_eq!((p.usable_ports_per_source, p.source_addr_count), (32_256, 32));
    assert_eq!(p.source_addrs.first(), Some(&v4(1)));
    assert_eq!(p.source_addrs.last(), Some(&v4(32)));
    assert!(p.memory.both_ends && p.memory.kernel_bytes > 8_000_000_000);
    let text = p.describe();
    assert!(text.contains("1,000,000 connections over 52 rings"), "{text}");
    assert!(text.contains("127.0.0.1–127.0.0.32"), "{text}");
    // The server port 8080 now lies in the range: reserve it.
    assert!(p.warnings.iter().any(|w| w.fix.contains("ip_local_reserved_ports=8080")), "{:?}", p.warnings);
    assert!(serde_json::to_string(&p).unwrap().contains("\"limited_by\":\"RLIMIT_NOFILE 20000\""));
}

#[test]
fn a_million_with_the_default_range_auto_uses_more_sources() {
    let p = ok(plan(&this_machine(), &loopback(1_000_000, 2)));
    assert_eq!(p.source_addr_count, 71); // ⌈1,000,000 / 14,116⌉ (half of 28,232)
    assert_eq!(p.source_addrs.last(), Some(&v4(71)));
    // tcp_max_syn_backlog 2048 on this machine: warned, not refused.
    assert!(p.warnings.iter().any(|w| w.fix.contains("sysctl -w net.ipv4.tcp_max_syn_backlog=65535")));
}

#[test]
fn a_million_with_the_default_range_and_32_explicit_sources_is_refused() {
    let mut req = loopback(1_000_000, 2);
    req.sources = SourceAddrs::Explicit((1..=32).map(v4).collect());
    let problems = refused(plan(&this_machine(), &req));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let fix = &problems[0].fix;
    assert!(fix.contains("give 71 source addresses"), "{fix}");
    assert!(fix.contains("--source-addr"), "{fix}");
    assert!(fix.contains("sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\""), "{fix}");
    assert!(fix.contains("(32 addresses then)"), "{fix}");
    assert!(fix.contains("sysctl -w net.ipv4.ip_local_reserved_ports=8080"), "{fix}");
    // The same 32 suffice with the wide range.
    ok(plan(&wide(this_machine()), &req));
}

#[test]
fn explicit_sources_too_few_or_of_the_wrong_family() {
    let mut req = loopback(100_000, 2);
    req.sources = SourceAddrs::Explicit(vec![v4(1), v4(2)]);
    let problems = refused(plan(&wide(this_machine()), &req));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].fix.starts_with("give 4 source addresses of the target's family (--source-addr"));
    assert!(problems[0].found.contains("2 source address(es)"), "{:?}", problems[0]);
    req.sources = SourceAddrs::Explicit(vec!["::1".parse().unwrap()]);
    let problems = refused(plan(&wide(this_machine()), &LoadRequest { connections: 10, ..req }));
    assert!(problems[0].found.starts_with("0 source address(es)"), "{:?}", problems[0]);
}

#[test]
fn remote_target_with_auto_sources_gets_one_kernel_chosen_address() {
    let req = LoadRequest::new(14_000, vec!["10.0.0.5:443".parse().unwrap()], 2);
    assert!(!req.target_on_this_host);
    let p = ok(plan(&this_machine(), &req));
    assert!(p.targets[0].kernel_chooses_source && p.source_addr_count == 0);
    assert!(!p.memory.both_ends);
    let problems = refused(plan(&this_machine(), &LoadRequest { connections: 100_000, ..req }));
    assert!(problems[0].fix.contains("--source-addr") && problems[0].fix.contains("ip addr add"), "{problems:?}");
    // Not on this host: no reservation advice.
    assert!(!problems[0].fix.contains("reserved_ports"), "{problems:?}");
}

#[test]
fn file_max_too_low() {
    let mut facts = this_machine();
    facts.file_max = Some(1_000_000);
    facts.files_in_use = Some(10_000);
    let problems = refused(plan(&facts, &loopback(600_000, 2)));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].fix, "`sysctl -w fs.file-max=2097152`"); // 10,000 + 1,204,128 rounded up
    assert!(problems[0].needed.contains("1,200,000 sockets, both ends"), "{:?}", problems[0]);
}

#[test]
fn memory_too_small_is_refused_and_tight_is_warned() {
    let mut facts = wide(this_machine());
    facts.mem_available = Some(4 * GIB);
    let problems = refused(plan(&facts, &loopback(1_000_000, 2)));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].what == "memory" && problems[0].fix.contains("run at most"), "{problems:?}");
    assert!(problems[0].fix.contains("target on another host"));
    facts.mem_available = Some(13 * GIB); // ≈ 10.8 GiB needed: 83 %
    let p = ok(plan(&facts, &loopback(1_000_000, 2)));
    assert!(p.warnings.iter().any(|w| w.what.starts_with("memory above")), "{:?}", p.warnings);
    assert!(p.memory.percent_of_available.is_some_and(|x| (70.0..90.0).contains(&x)));
}

#[test]
fn message_buffers_scale_with_message_size_and_connections_carrying_them() {
    let facts = this_machine();
    // Idle: no message buffers at all.
    let idle = ok(plan(&facts, &loopback(100, 2)));
    assert_eq!(idle.memory.message_bytes, 0);
    // 100 connections with 64 KiB messages: each carrier's Client (frame + assembly up
    // to twice the message) and send buffer, plus one template per worker.
    let p = ok(plan(&facts, &loopback(100, 2).with_messages(64 << 10, None)));
    assert_eq!(p.memory.message_bytes, (64 << 10) * (100 * MESSAGE_COPIES_PER_CLIENT + 100 + 2));
    assert_eq!(p.memory.user_bytes, idle.memory.user_bytes + p.memory.message_bytes);
    assert!(p.describe().contains("of it message buffers"), "{}", p.describe());
    // 1,000 carriers among 50,000 held: the pools keep warm buffers beyond the
    // carriers (4,096 Clients and 1,024 small send buffers per worker) ...
    let p = ok(plan(&facts, &loopback(50_000, 2).with_messages(1_000, Some(1_000))));
    let clients = 1_000 + 2 * CLIENT_POOL_KEEP;
    assert_eq!(p.memory.message_bytes, 1_000 * (clients * MESSAGE_COPIES_PER_CLIENT + 1_000 + 2 * SEND_POOL_KEEP + 2));
    // ... and large send buffers are not pooled.
    let big = 4 << 20;
    let mut roomy = this_machine();
    roomy.mem_available = Some(1 << 50);
    let p = ok(plan(&roomy, &loopback(50_000, 2).with_messages(big, Some(1_000))));
    assert_eq!(p.memory.message_bytes, big * (clients * MESSAGE_COPIES_PER_CLIENT + 1_000 + 2));
    // Never more holders than connections, and no overflow at absurd sizes.
    let p = ok(plan(&facts, &loopback(10, 1).with_messages(1_000, Some(50))));
    assert_eq!(p.memory.message_bytes, 1_000 * (10 * MESSAGE_COPIES_PER_CLIENT + 10 + 1));
    let problems = refused(plan(&facts, &loopback(10, 1).with_messages(u64::MAX, None)));
    assert!(problems[0].what == "memory", "{problems:?}");
}

#[test]
fn two_gigabyte_messages_on_a_hundred_connections_are_refused_with_the_size_that_fits() {
    // The run that planned 4 MiB and then grew to 11 GiB: 100 connections × 2 GB.
    let facts = this_machine();
    let err = plan(&facts, &loopback(100, 2).with_messages(2_000_000_000, None)).unwrap_err();
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    let problems = refused(Err(err));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let m = &problems[0];
    assert_eq!(m.what, "memory");
    assert!(m.needed.contains("for messages of 2,000,000,000 bytes"), "{m:?}");
    assert!(m.fix.starts_with("send smaller messages: at most ") && m.fix.contains("--message-size"), "{m:?}");
    // The size offered fits: planning with it succeeds.
    let fit: u64 =
        m.fix["send smaller messages: at most ".len()..].split(' ').next().unwrap().replace(',', "").parse().unwrap();
    assert!((10_000_000..2_000_000_000).contains(&fit), "{fit}");
    ok(plan(&facts, &loopback(100, 2).with_messages(fit, None)));
    // Connections alone too many: the connection count offered counts the message
    // buffers of each connection too.
    let mut small = this_machine();
    small.mem_available = Some(64 << 20);
    let problems = refused(plan(&small, &loopback(10_000, 2).with_messages(1_024, None)));
    let rings = 2 * (19_744 * KERNEL_BYTES_PER_SLOT + USER_BYTES_PER_RING);
    let per_conn = 2 * KERNEL_BYTES_PER_SOCKET + USER_BYTES_PER_CONNECTION + 1_024 * (MESSAGE_COPIES_PER_CLIENT + 1);
    let fit = ((64 << 20) * MEMORY_REFUSE_PERCENT / 100 - rings) / per_conn;
    assert_eq!(problems[0].fix.split(' ').nth(3), Some(thousands(fit).as_str()), "{problems:?}");
    assert!(problems[0].fix.starts_with("run at most "), "{problems:?}");
}

#[test]
fn several_problems_are_all_reported_in_one_line() {
    let mut facts = this_machine();
    facts.mem_available = Some(GIB);
    facts.file_max = Some(100_000);
    let mut req = loopback(1_000_000, 2);
    req.sources = SourceAddrs::Explicit(vec![v4(1)]);
    let err = plan(&facts, &req).unwrap_err();
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.starts_with("pre-flight refused the run (3 problems)"), "{line}");
    for needle in ["--source-addr", "fs.file-max=", "run at most"] {
        assert!(line.contains(needle), "{needle} missing: {line}");
    }
    let problems = refused(plan(&facts, &LoadRequest { connections: 0, workers: 0, targets: vec![], ..req }));
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn reserved_ports_reduce_the_usable_count() {
    assert_eq!(usable_ports((1024, 65535), &[]), 64_512);
    assert_eq!(usable_ports((1024, 65535), &[(1024, 2047)]), 63_488);
    // Overlaps count once; ranges outside are ignored; partial overlap is clipped.
    assert_eq!(usable_ports((32768, 60999), &[(8080, 8080), (40000, 40099), (40050, 40149), (60990, 61010)]), 28_072);
    let mut facts = this_machine();
    facts.reserved_ports = Some(vec![(32768, 40000)]);
    let p = ok(plan(&facts, &loopback(1_000_000, 2)));
    assert_eq!(p.usable_ports_per_source, 10_499); // half of the 20,999 unreserved ports
    assert_eq!(p.source_addr_count, 96);
}

#[test]
fn unknown_facts_degrade_to_warnings() {
    let mut facts = this_machine();
    facts.file_max = None;
    facts.mem_available = None;
    facts.port_range = None;
    facts.unknown.push(UnknownFact { fact: "fs.file-max", reason: "cannot read /proc/sys/fs/file-max".into() });
    let p = ok(plan(&facts, &loopback(100_000, 2)));
    assert_eq!(p.port_range, DEFAULT_PORT_RANGE);
    let whats: Vec<&str> = p.warnings.iter().map(|w| w.what.as_str()).collect();
    for w in ["fs.file-max unknown", "MemAvailable unknown", "net.ipv4.ip_local_port_range unknown"] {
        assert!(whats.contains(&w), "{w} missing: {whats:?}");
    }
    assert!(p.warnings.iter().any(|w| w.found == "cannot read /proc/sys/fs/file-max"));
}

#[test]
fn too_many_rings_and_raisable_limits() {
    let mut facts = this_machine();
    facts.nofile_hard = 1024;
    facts.mem_available = Some(1 << 50);
    facts.file_max = Some(1 << 40);
    facts.port_range = Some((1024, 65535));
    let problems = refused(plan(&facts, &loopback(10_000_000, 2)));
    assert!(problems.iter().any(|p| p.what == "io_uring rings" && p.fix.contains("limits.conf")), "{problems:?}");
    facts.nofile_hard = 20_000;
    facts.can_raise_nofile_hard = Some(true);
    let p = ok(plan(&facts, &loopback(1_000_000, 2)));
    let hint = p.warnings.iter().find(|w| w.what == "RLIMIT_NOFILE hard limit").expect("hint");
    assert_eq!(hint.fix, "`ulimit -Hn 500256 && ulimit -n 500256` in the shell that starts loadgen");
    facts.nofile_hard = 1 << 21;
    let p = ok(plan(&facts, &loopback(3_000_000, 1)));
    assert_eq!((p.rings, p.limited_by.as_str()), (3, "IORING_MAX_FIXED_FILES 1048576"));
}

#[test]
fn every_problem_is_one_line() {
    let mut facts = this_machine();
    facts.mem_available = Some(GIB);
    facts.file_max = Some(10);
    let mut req = loopback(1_000_000, 8);
    req.sources = SourceAddrs::Explicit(vec![v4(1)]);
    for p in refused(plan(&facts, &req)) {
        assert!(!p.to_string().contains('\n'), "{p}");
    }
    let e = PreflightError::RaiseNofile { hard: 20_000, reason: "EPERM".into() };
    assert_eq!(e.to_string().lines().count(), 1);
}

#[test]
fn auto_source_addresses_cover_127_slash_8() {
    assert_eq!(auto_source_addr(0), Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(auto_source_addr(255), Some(Ipv4Addr::new(127, 0, 1, 0)));
    assert_eq!(auto_source_addr(AUTO_SOURCE_MAX - 1), Some(Ipv4Addr::new(127, 255, 255, 254)));
    assert_eq!(auto_source_addr(AUTO_SOURCE_MAX), None);
}

#[test]
fn proc_formats_parse() {
    assert_eq!(parse_file_nr("204\t0\t2466174\n"), Ok(204));
    assert_eq!(parse_port_range("32768\t60999\n"), Ok((32768, 60999)));
    assert!(parse_port_range("60999 32768").is_err());
    assert_eq!(parse_port_list("\n"), Ok(vec![]));
    assert_eq!(parse_port_list("8080,9000-9100\n"), Ok(vec![(8080, 8080), (9000, 9100)]));
    assert!(parse_port_list("9100-9000").is_err());
    let meminfo = "MemTotal:       24576000 kB\nMemFree: 1 kB\nMemAvailable:   24000000 kB\n";
    assert_eq!(meminfo_bytes(meminfo, "MemAvailable"), Ok(24_000_000 * 1024));
    assert!(meminfo_bytes("MemTotal: 1 kB", "MemAvailable").is_err());
    let caps = cap_eff("Name:\tx\nCapEff:\t000001fffeffffff\n").unwrap();
    assert_eq!(caps & (1 << 24), 0);
    assert_eq!(thousands(1_000_000), "1,000,000");
    assert_eq!(thousands(999), "999");
}

proptest! {
    #[test]
    fn rings_hold_every_connection_within_capacity(
        connections in prop_oneof![1u64..20_000, 1u64..5_000_000], workers in 1usize..16, nofile in 300u64..100_000, targets in 1usize..4,
    ) {
        let mut facts = wide(this_machine());
        facts.nofile_hard = nofile;
        facts.mem_available = Some(1 << 50);
        facts.file_max = Some(1 << 40);
        facts.cpus = Some(16);
        let ts: Vec<SocketAddr> = (0..targets).map(|i| SocketAddr::new(v4(1), 8000 + i as u16)).collect();
        let Ok(p) = plan(&facts, &LoadRequest::new(connections, ts, workers)) else { return Ok(()) };
        let cap = u64::from(p.per_ring_capacity);
        prop_assert_eq!(p.workers.iter().map(|w| w.connections).sum::<u64>(), connections);
        prop_assert_eq!(p.rings_per_worker.iter().sum::<u64>(), p.rings);
        for w in &p.workers {
            prop_assert_eq!(w.ring_connections.iter().sum::<u64>(), w.connections);
            prop_assert!(w.ring_connections.iter().all(|&c| c <= cap));
        }
        for t in &p.targets {
            prop_assert!(t.connections <= t.sources * p.usable_ports_per_source);
        }
        // The round-robin assignment yields exactly the planned counts.
        if connections <= 20_000 {
            let mut counts: Vec<Vec<u64>> = p.workers.iter().map(|w| vec![0; w.ring_connections.len()]).collect();
            for k in 0..connections {
                let (w, r) = p.worker_and_ring(k);
                counts[w][r] += 1;
                prop_assert!(p.target_and_source(k).1 < p.targets[p.target_and_source(k).0].sources);
            }
            let planned: Vec<Vec<u64>> = p.workers.iter().map(|w| w.ring_connections.clone()).collect();
            prop_assert_eq!(counts, planned);
        }
    }
}

#[test]
fn reads_this_host_and_plans_a_million() {
    let facts = HostFacts::read().expect("host facts");
    assert!(facts.nofile_hard >= 1024 && facts.nofile_soft <= facts.nofile_hard, "{facts:?}");
    assert!(facts.cpus.is_some_and(|c| c >= 1), "{facts:?}");
    assert!(facts.mem_total.is_some_and(|m| m > 0), "{facts:?}");
    assert!(!facts.kernel_release.is_empty());
    assert_eq!(raise_nofile_soft_to_hard().expect("raise"), facts.nofile_hard);
    println!("host: {facts:?}");
    let workers = facts.cpus.unwrap_or(1);
    match plan(&facts, &loopback(1_000_000, workers)) {
        Ok(p) => println!("{}", p.describe()),
        Err(e) => println!("{e}"),
    }
}
