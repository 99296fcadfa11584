//! What an offline persistent session is kept, over raw packets.

use strata_broker::BrokerConfig;
use strata_testkit::{TestBroker, raw};

/// `keeper` subscribes at QoS 0 and goes offline; a QoS 0 and then a QoS 1
/// message are published; it comes back. Returns the payloads it gets.
async fn offline_then_back(queue_qos0: bool) -> Vec<Vec<u8>> {
    let b = TestBroker::start(BrokerConfig {
        sys_interval: None,
        queue_qos0_messages: queue_qos0,
        ..BrokerConfig::default()
    })
    .await;
    let (mut keeper, _) = b.persistent("keeper").await;
    keeper.send(&raw::subscribe(4, 1, "q/#", 1)).await;
    keeper.expect(9).await;
    keeper.send(&raw::DISCONNECT).await;
    keeper.until_closed().await;
    let mut publ = b.client().await;
    publ.send(&raw::connect_clean(4, "pub")).await;
    publ.expect(2).await;
    publ.send(&raw::publish_qos0(4, "q/0", b"qos0")).await;
    publ.send(&raw::publish(4, 1, false, "q/1", 1, b"qos1"))
        .await;
    publ.expect(4).await;
    let (mut back, present) = b.persistent("keeper").await;
    assert!(present);
    let mut got = Vec::new();
    while got.last().map(Vec::as_slice) != Some(&b"qos1"[..]) {
        let p = back.expect(3).await;
        let payload = if p.first & 0x06 == 0 {
            // QoS 0: topic, then the payload.
            let n = usize::from(u16::from_be_bytes([p.body[0], p.body[1]]));
            p.body[2 + n..].to_vec()
        } else {
            p.publish_parts().1
        };
        got.push(payload);
    }
    got
}

#[tokio::test]
async fn an_offline_session_gets_no_qos0_by_default() {
    assert_eq!(offline_then_back(false).await, vec![b"qos1".to_vec()]);
}

#[tokio::test]
async fn queue_qos0_messages_keeps_qos0_for_an_offline_session() {
    assert_eq!(
        offline_then_back(true).await,
        vec![b"qos0".to_vec(), b"qos1".to_vec()]
    );
}
