//! The connection scenarios: idle connections and subscriptions (broker
//! memory per connection), and whole connections at a fixed rate (broker
//! CPU per handshake).

use std::time::{Duration, Instant};

use strata_client::{Client, QoS};

use super::{BenchArgs, Report, Scenario, options, percentiles, ramp_pause, raw, sample, setup};

/// Idle connections, or connections with one subscription each.
pub(super) async fn connections(
    a: &BenchArgs,
    tag: &str,
    qos: QoS,
    n: usize,
) -> Result<(), String> {
    let before = sample(a.pid);
    let t0 = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let (client, inbox, _) = Client::connect(options(a, format!("b-{tag}-c{i}")))
            .await
            .map_err(|e| format!("connection {i}: {e}"))?;
        if a.scenario == Scenario::Subscriptions {
            client
                .subscribe(&[(format!("bench/{tag}/s/{i}").as_str(), qos)])
                .await
                .map_err(|e| format!("subscribe {i}: {e}"))?;
        }
        clients.push((client, inbox));
        if !a.json && (i + 1) % 1000 == 0 {
            eprintln!("{:>5.1}s {} connections", t0.elapsed().as_secs_f64(), i + 1);
        }
        ramp_pause(a).await;
    }
    // Let the broker settle what the connections cost it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = sample(a.pid);
    let mut report = Report {
        scenario: format!("{:?}", a.scenario),
        clients: n,
        qos: a.qos,
        size: a.size,
        seconds: t0.elapsed().as_secs_f64(),
        ..Report::default()
    };
    if let (Some(b), Some(af)) = (before, after) {
        report.broker_rss = Some(af.rss);
        report.rss_per_connection = Some((af.rss as f64 - b.rss as f64) / n as f64);
    }
    report.print(a.json);
    for (client, _) in clients {
        let _ = client.disconnect().await;
    }
    Ok(())
}

/// Connections at a fixed rate, each CONNECT, CONNACK, DISCONNECT and
/// closed: the handshakes' cost to the broker.
pub(super) async fn connect_rate(a: &BenchArgs, tag: &str) -> Result<(), String> {
    if a.rate == 0 {
        return Err("--scenario connect needs --rate (connections per second)".into());
    }
    let before = sample(a.pid);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(a.duration);
    let mut tasks = tokio::task::JoinSet::new();
    let mut opened = 0u64;
    loop {
        let due = t0 + Duration::from_secs_f64(opened as f64 / a.rate as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let s = setup(a, format!("b-{tag}-k{opened}"), false);
        tasks.spawn(async move {
            let started = Instant::now();
            raw::connect_once(&s).await.map(|()| started.elapsed())
        });
        opened += 1;
    }
    let mut times = Vec::new();
    let mut failed = 0u64;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(t)) => times.push(t.as_nanos() as u64),
            _ => failed += 1,
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let after = sample(a.pid);
    let done = times.len() as u64;
    let [p50, p99, p999, max] = percentiles(times);
    let cpu = before.zip(after).map(|(b, a)| a.cpu_s - b.cpu_s);
    let report = Report {
        scenario: format!("{:?}", a.scenario),
        clients: opened as usize,
        seconds,
        publish_seconds: seconds,
        // A connection counts as a message: msg_per_cpu_s is connections
        // per broker CPU-second.
        delivered: done,
        msg_per_s: done as f64 / seconds,
        p50_us: p50,
        p99_us: p99,
        p999_us: p999,
        max_us: max,
        lost: failed,
        broker_cpu_s: cpu,
        broker_sys_s: before.zip(after).map(|(b, a)| a.sys_s - b.sys_s),
        msg_per_cpu_s: cpu.map(|c| done as f64 / c.max(1e-9)),
        broker_rss: after.map(|s| s.rss),
        ..Report::default()
    };
    report.print(a.json);
    if failed > 0 {
        return Err(format!("{failed} of {opened} connections failed"));
    }
    Ok(())
}
