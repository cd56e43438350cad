//! The simulator's shared state: instances, pushed keys, faults, live tunnels and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eic_sim::wire::{Faults, SimStatus};
use tokio_util::sync::CancellationToken;

use crate::sigv4::Verifier;
use crate::sshd::Sshd;

/// One simulated instance.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub private_ip: String,
    pub ssh_port: u16,
    pub sshd: tokio::sync::Mutex<Sshd>,
}

#[derive(Debug)]
struct PushedKey {
    instance_id: String,
    os_user: String,
    public_key: String,
    expires: Instant,
}

#[derive(Debug)]
struct LiveTunnel {
    instance_id: String,
    cancel: CancellationToken,
}

#[derive(Debug, Default)]
struct Counters {
    tunnels_opened: AtomicU64,
    tunnels_rejected: AtomicU64,
    keys_pushed: AtomicU64,
    describe_calls: AtomicU64,
}

/// Concurrent tunnels an EIC endpoint allows on AWS (EC2 User Guide).
pub const DEFAULT_MAX_TUNNELS: u64 = 20;

#[derive(Debug)]
pub struct Sim {
    pub verifier: Verifier,
    pub region: String,
    /// `127.0.0.1:PORT`, the endpoint's DNS name.
    pub endpoint_dns: String,
    pub instances: BTreeMap<String, Instance>,
    /// Cancelled on shutdown; every tunnel's token is a child of it.
    pub shutdown: CancellationToken,
    keys: Mutex<Vec<PushedKey>>,
    faults: Mutex<Faults>,
    tunnels: Mutex<HashMap<u64, LiveTunnel>>,
    next_tunnel: AtomicU64,
    counters: Counters,
    /// Concurrent tunnels the endpoint allows (AWS: 20).
    max_tunnels: u64,
}

/// Removes its tunnel from the live set on `Drop`, however the relay ended.
#[derive(Debug)]
pub struct TunnelGuard<'a> {
    sim: &'a Sim,
    id: u64,
    pub cancel: CancellationToken,
}

impl Drop for TunnelGuard<'_> {
    fn drop(&mut self) {
        self.sim.tunnels.lock().unwrap().remove(&self.id);
    }
}

impl Sim {
    pub fn new(
        verifier: Verifier,
        region: String,
        endpoint_dns: String,
        instances: BTreeMap<String, Instance>,
        faults: Faults,
        shutdown: CancellationToken,
    ) -> Self {
        Sim {
            verifier,
            region,
            endpoint_dns,
            instances,
            shutdown,
            keys: Mutex::default(),
            faults: Mutex::new(faults),
            tunnels: Mutex::default(),
            next_tunnel: AtomicU64::new(1),
            counters: Counters::default(),
            max_tunnels: DEFAULT_MAX_TUNNELS,
        }
    }

    /// An endpoint allowing `max` concurrent tunnels instead of AWS's 20 (`--max-tunnels`).
    pub fn with_max_tunnels(mut self, max: u64) -> Self {
        self.max_tunnels = max;
        self
    }

    /// Concurrent tunnels the endpoint allows.
    pub fn max_tunnels(&self) -> u64 {
        self.max_tunnels
    }

    pub fn faults(&self) -> Faults {
        *self.faults.lock().unwrap()
    }

    pub fn update_faults(&self, update: impl FnOnce(&mut Faults)) -> Faults {
        let mut faults = self.faults.lock().unwrap();
        update(&mut faults);
        *faults
    }

    pub fn instance_by_ip(&self, private_ip: &str) -> Option<&Instance> {
        self.instances.values().find(|i| i.private_ip == private_ip)
    }

    pub fn push_key(&self, instance_id: &str, os_user: &str, public_key: &str) {
        let now = Instant::now();
        let ttl = Duration::from_millis(self.faults().key_ttl_ms);
        let mut keys = self.keys.lock().unwrap();
        keys.retain(|k| k.expires > now);
        keys.push(PushedKey {
            instance_id: instance_id.to_owned(),
            os_user: os_user.to_owned(),
            public_key: public_key.to_owned(),
            expires: now + ttl,
        });
        self.counters.keys_pushed.fetch_add(1, Ordering::Relaxed);
    }

    /// The keys pushed for this instance and user within the key TTL, newest first.
    pub fn authorized_keys(&self, instance_id: &str, os_user: &str) -> Vec<String> {
        let now = Instant::now();
        let keys = self.keys.lock().unwrap();
        keys.iter()
            .rev()
            .filter(|k| k.expires > now && k.instance_id == instance_id && k.os_user == os_user)
            .map(|k| k.public_key.clone())
            .collect()
    }

    /// Expires every key now; returns how many were live.
    pub fn expire_keys(&self) -> u64 {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap();
        let live = keys.iter().filter(|k| k.expires > now).count();
        keys.clear();
        live as u64
    }

    /// Registers a tunnel that reached the relay.
    pub fn open_tunnel(&self, instance_id: &str) -> TunnelGuard<'_> {
        let id = self.next_tunnel.fetch_add(1, Ordering::Relaxed);
        let cancel = self.shutdown.child_token();
        self.tunnels.lock().unwrap().insert(
            id,
            LiveTunnel {
                instance_id: instance_id.to_owned(),
                cancel: cancel.clone(),
            },
        );
        self.counters.tunnels_opened.fetch_add(1, Ordering::Relaxed);
        TunnelGuard {
            sim: self,
            id,
            cancel,
        }
    }

    /// Drops the live tunnels (of one instance, or all); returns how many.
    pub fn drop_tunnels(&self, instance_id: Option<&str>) -> u64 {
        let tunnels = self.tunnels.lock().unwrap();
        let mut dropped = 0;
        for tunnel in tunnels.values() {
            if instance_id.is_none_or(|id| id == tunnel.instance_id) {
                tunnel.cancel.cancel();
                dropped += 1;
            }
        }
        dropped
    }

    pub fn live_tunnels(&self) -> u64 {
        self.tunnels.lock().unwrap().len() as u64
    }

    pub fn count_rejected_tunnel(&self) {
        self.counters
            .tunnels_rejected
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_describe(&self) {
        self.counters.describe_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn status(&self) -> SimStatus {
        let mut sshd_running = BTreeMap::new();
        for (id, instance) in &self.instances {
            sshd_running.insert(id.clone(), instance.sshd.lock().await.is_running());
        }
        SimStatus {
            live_tunnels: self.live_tunnels(),
            tunnels_opened: self.counters.tunnels_opened.load(Ordering::Relaxed),
            tunnels_rejected: self.counters.tunnels_rejected.load(Ordering::Relaxed),
            keys_pushed: self.counters.keys_pushed.load(Ordering::Relaxed),
            describe_calls: self.counters.describe_calls.load(Ordering::Relaxed),
            faults: self.faults(),
            sshd_running,
        }
    }
}
