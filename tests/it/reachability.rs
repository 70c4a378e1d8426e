//! Media reachability against loopback STUN responders (udp, tcp, TLS with a CA generated
//! here): the best node per transport, silent nodes, responders that only misbehave, udp
//! retransmission, and the join body. Every wait is bounded by an outer timeout; nothing
//! sleeps to wait for results and no assertion depends on how fast the machine is.

use crate::support::stun_responder as responder;

use std::time::Duration;

use responder::{Behaviour, NodeSpec, Responders, TestTls};
use roomd::reachability::{
    ClusterDocument, ProbeOptions, Reachability, ReachabilityReport, Transport, run_discovery,
};

/// Guards every run; far longer than any run below needs.
const GUARD: Duration = Duration::from_secs(30);

async fn run(
    specs: &[(&str, NodeSpec)],
    options: ProbeOptions,
) -> (ReachabilityReport, Vec<responder::Node>, Responders) {
    let tls = TestTls::generate();
    let mut responders = Responders::default();
    let mut nodes = Vec::new();
    let mut clusters = Vec::new();
    for (name, spec) in specs {
        let node = responders.start(spec, &tls).await;
        clusters.push((name.to_string(), node.cluster()));
        nodes.push(node);
    }
    let document = ClusterDocument::new(clusters);
    let report = tokio::time::timeout(
        GUARD,
        run_discovery(&document, &options, tls.client_config()),
    )
    .await
    .expect("the discovery run ends");
    (report, nodes, responders)
}

fn options(timeout_ms: u64) -> ProbeOptions {
    ProbeOptions {
        timeout: Duration::from_millis(timeout_ms),
        ..ProbeOptions::default()
    }
}

/// How late the slow transports answer. Under qemu-user, beside the other tests of this
/// process, a 5 ms answer has been read more than 400 ms late (CI: the fast tcp node lost to
/// a 400 ms one; once every udp answer came 400 ms late, so the fast udp cluster counted as
/// xTls), so there the gap is wider.
const SLOW_MS: u64 = if cfg!(target_arch = "aarch64") {
    2000
} else {
    400
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_node_per_transport_and_join_body() {
    let (report, nodes, _responders) = run(
        &[
            ("fast-udp.*", NodeSpec::answering(5, SLOW_MS, SLOW_MS)),
            ("fast-tcp.*", NodeSpec::answering(SLOW_MS, 5, SLOW_MS)),
            ("fast-xtls.*", NodeSpec::answering(SLOW_MS, SLOW_MS, 5)),
        ],
        options(SLOW_MS * 4),
    )
    .await;
    assert_eq!(report.clusters_reached(), 3);
    assert_eq!(
        report.status(),
        roomd::reachability::ReachabilityState::Completed
    );
    for (transport, index, cluster) in [
        (Transport::Udp, 0, "fast-udp.*"),
        (Transport::Tcp, 1, "fast-tcp.*"),
        (Transport::Xtls, 2, "fast-xtls.*"),
    ] {
        let best = report.best(transport).expect("a best node");
        assert_eq!(best.cluster, cluster, "{transport}");
        assert_eq!(best.node, nodes[index].addr(transport));
        assert!(best.rtt >= Duration::from_millis(5));
    }
    // Every cluster counted once, under its fastest transport (SLOW_MS keeps a cluster's own
    // transports from swapping places under qemu-user too).
    assert_eq!(report.reached_by_fastest(), [1, 1, 1]);
    assert_eq!(
        report.summary_line(),
        "CalliopeDiscovery completed with response from 3 out of 3 servers. 1 udp, 1 tcp, 1 xTls"
    );
    let slow = &report.clusters[0].tcp.as_ref().unwrap();
    assert!(slow.rtt.unwrap() >= Duration::from_millis(SLOW_MS));
    // The XOR-MAPPED-ADDRESS is where the responder saw the probe come from.
    assert!(
        report.clusters[0]
            .udp
            .as_ref()
            .unwrap()
            .mapped
            .unwrap()
            .ip()
            .is_loopback()
    );
    assert_eq!(report.ignored_responses(), 0);

    let handle = Reachability::new();
    assert_eq!(handle.join_body(), serde_json::json!({}));
    let seen = handle.subscribe();
    handle.publish(report);
    assert!(seen.has_changed().unwrap());
    let body = handle.join_body();
    assert_eq!(body.as_object().unwrap().len(), 3);
    for transport in ["udp", "tcp", "xtls"] {
        assert_eq!(body["fast-udp.*"][transport]["reachable"], true);
        assert!(body["fast-udp.*"][transport]["latencyInMilliseconds"].is_u64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_time_out_concurrently() {
    // 20 silent clusters × 3 transports at a 500 ms timeout: sequential probes would need
    // 30 s, past the guard; concurrent ones end after about one timeout. Under qemu-user,
    // beside the other tests, the live node's TLS answer can take longer than 500 ms: there
    // the timeout is 2 s (udp then goes out at 0, 100, 300 and 700 ms).
    let timeout_ms = if cfg!(target_arch = "aarch64") {
        2000
    } else {
        500
    };
    let udp_sends = if cfg!(target_arch = "aarch64") {
        1..=4
    } else {
        1..=3
    };
    let mut specs: Vec<(String, NodeSpec)> = (0..20)
        .map(|i| (format!("silent-{i:02}.*"), NodeSpec::silent()))
        .collect();
    specs.push(("alive.*".into(), NodeSpec::answering(5, 5, 5)));
    let specs: Vec<(&str, NodeSpec)> = specs.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    let (report, nodes, _responders) = run(&specs, options(timeout_ms)).await;
    assert_eq!(report.clusters.len(), 21);
    assert_eq!(report.clusters_reached(), 1);
    assert!(
        report.peak_in_flight > 3,
        "probes ran at once: {}",
        report.peak_in_flight
    );
    for cluster in &report.clusters[..20] {
        for transport in Transport::ALL {
            let result = cluster.get(transport).unwrap();
            assert!(!result.reachable());
            assert_eq!(
                result.failure.as_deref(),
                Some(format!("timed out after {timeout_ms} ms").as_str())
            );
        }
        // udp goes out at 0, 100 and 300 ms (and 700 with the longer timeout); never past it.
        let sent = cluster.udp.as_ref().unwrap().requests_sent;
        assert!(udp_sends.contains(&sent), "{sent}");
    }
    assert!(udp_sends.contains(&nodes[0].datagrams()));
    let body = roomd::reachability::ReachabilityReport::join_body(&report);
    assert_eq!(
        body["silent-00.*"]["udp"],
        serde_json::json!({"reachable": false})
    );
    assert_eq!(
        body["alive.*"]["xtls"]["reachable"],
        serde_json::Value::Bool(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_responders_are_unreachable_and_counted() {
    let (report, _nodes, _responders) = run(
        &[
            ("garbage.*", NodeSpec::misbehaving(Behaviour::Garbage)),
            ("wrong-txid.*", NodeSpec::misbehaving(Behaviour::WrongTxid)),
            ("error.*", NodeSpec::misbehaving(Behaviour::Error)),
            ("honest.*", NodeSpec::answering(50, 50, 50)),
        ],
        options(800),
    )
    .await;
    assert_eq!(report.clusters_reached(), 1);
    for cluster in &report.clusters[..3] {
        for transport in Transport::ALL {
            let result = cluster.get(transport).unwrap();
            assert!(!result.reachable(), "{} {transport}", cluster.name);
            assert!(result.ignored >= 1, "{} {transport}", cluster.name);
            assert_eq!(result.failure.as_deref(), Some("timed out after 800 ms"));
        }
    }
    for transport in Transport::ALL {
        assert_eq!(report.best(transport).unwrap().cluster, "honest.*");
    }
    assert!(report.ignored_responses() >= 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_retransmits_with_the_same_transaction() {
    let (report, nodes, _responders) = run(
        &[(
            "third-time.*",
            NodeSpec::misbehaving(Behaviour::AnswerNthDatagram(3)),
        )],
        options(3000),
    )
    .await;
    let udp = report.clusters[0].udp.as_ref().unwrap();
    assert!(udp.reachable(), "{:?}", udp.failure);
    // Answered on the third datagram (a fourth goes out only if that answer is late).
    assert!(udp.requests_sent >= 3, "{}", udp.requests_sent);
    assert!(nodes[0].datagrams() >= 3);
    // The RTT counts from the first send: the third goes out at 300 ms.
    assert!(udp.rtt.unwrap() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_untrusted_nodes_are_unreachable() {
    let tls = TestTls::generate();
    let mut responders = Responders::default();
    let node = responders.start(&NodeSpec::answering(5, 5, 5), &tls).await;
    // A closed port: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cluster = node.cluster();
    cluster.tcp = vec![closed];
    let document = ClusterDocument::new(vec![("mixed.*".into(), cluster)]);
    // A client that does not trust the test CA.
    let other = TestTls::generate().client_config();
    let report = tokio::time::timeout(GUARD, run_discovery(&document, &options(2000), other))
        .await
        .unwrap();
    let cluster = &report.clusters[0];
    assert!(cluster.udp.as_ref().unwrap().reachable());
    let tcp = cluster.tcp.as_ref().unwrap();
    assert_eq!(tcp.failure.as_deref(), Some("connection refused"));
    let xtls = cluster.xtls.as_ref().unwrap();
    assert!(
        xtls.failure.as_deref().unwrap().starts_with("TLS"),
        "{xtls:?}"
    );
    assert_eq!(report.best_overall().unwrap().transport, Transport::Udp);
}
