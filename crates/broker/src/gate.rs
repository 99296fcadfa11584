//! CONNECT handling one client id at a time: a takeover or resume of one
//! id never interleaves with another of the same id, while CONNECTs of
//! different ids never wait on each other (one stuck takeover must not
//! stall every login).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use strata_codec::MqttStr;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::util::lock;

/// One async lock per client id with a CONNECT in progress, with the
/// number of CONNECTs that hold or wait for it; the last one out removes
/// the id, so the map holds only the ids being connected right now.
#[derive(Debug, Default)]
pub(crate) struct ConnectGate {
    ids: Mutex<HashMap<MqttStr, Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    lock: Arc<AsyncMutex<()>>,
    /// CONNECTs holding or waiting for `lock`.
    users: usize,
}

/// One CONNECT's place at an id's slot, from the call to `enter` until it
/// is done or dropped while waiting.
#[derive(Debug)]
struct Claim<'a> {
    gate: &'a ConnectGate,
    id: MqttStr,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut ids = lock(&self.gate.ids);
        if let Some(slot) = ids.get_mut(&self.id) {
            slot.users -= 1;
            if slot.users == 0 {
                ids.remove(&self.id);
            }
        }
    }
}

/// Held while one CONNECT of an id is handled.
#[derive(Debug)]
pub(crate) struct Pass<'a> {
    // Released before the claim (fields drop in order): a waiter takes the
    // lock while the id is still in the map.
    _guard: OwnedMutexGuard<()>,
    _claim: Claim<'a>,
}

impl ConnectGate {
    /// Waits until no other CONNECT of `id` is being handled. The wait
    /// counts from this call, not from the first poll.
    pub(crate) fn enter(&self, id: &MqttStr) -> impl Future<Output = Pass<'_>> + '_ {
        let lock = {
            let mut ids = lock(&self.ids);
            let slot = ids.entry(id.clone()).or_default();
            slot.users += 1;
            slot.lock.clone()
        };
        let claim = Claim {
            gate: self,
            id: id.clone(),
        };
        async move {
            let guard = lock.lock_owned().await;
            Pass {
                _guard: guard,
                _claim: claim,
            }
        }
    }

    /// Client ids with a CONNECT being handled or waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.ids).len()
    }

    /// Whether a CONNECT of `id` waits behind another.
    #[cfg(test)]
    pub(crate) fn is_waited(&self, id: &MqttStr) -> bool {
        lock(&self.ids).get(id).is_some_and(|s| s.users > 1)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::testing::counting_waker;

    fn id(s: &str) -> MqttStr {
        MqttStr::try_from(s.to_owned()).expect("valid")
    }

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        let (_, waker) = counting_waker();
        f.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn other_ids_pass_while_one_is_held() {
        let gate = ConnectGate::default();
        let a = pin!(gate.enter(&id("a")));
        let Poll::Ready(held) = poll(a) else {
            panic!("the first CONNECT of a waited");
        };
        let b = pin!(gate.enter(&id("b")));
        assert!(poll(b).is_ready(), "b waited on a's CONNECT");
        drop(held);
    }

    #[test]
    fn the_same_id_waits_for_the_holder_and_the_map_empties() {
        let gate = ConnectGate::default();
        let Poll::Ready(first) = poll(pin!(gate.enter(&id("a")))) else {
            panic!("the first CONNECT of a waited");
        };
        let mut second = pin!(gate.enter(&id("a")));
        assert!(poll(second.as_mut()).is_pending());
        drop(first);
        // The waiter keeps the entry alive through the first one's exit.
        assert_eq!(gate.len(), 1);
        let Poll::Ready(second) = poll(second) else {
            panic!("the second CONNECT of a still waits after the first left");
        };
        drop(second);
        assert_eq!(gate.len(), 0);
    }

    #[test]
    fn a_connect_dropped_while_waiting_leaves_no_entry() {
        let gate = ConnectGate::default();
        let Poll::Ready(first) = poll(pin!(gate.enter(&id("a")))) else {
            panic!("the first CONNECT of a waited");
        };
        let mut second = Box::pin(gate.enter(&id("a")));
        assert!(poll(second.as_mut()).is_pending());
        drop(first);
        drop(second);
        assert_eq!(gate.len(), 0);
    }
}
