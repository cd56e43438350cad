//! A local EC2 Instance Connect for tests, benchmarks and development.
//!
//! The `eic-sim` binary serves `SendSSHPublicKey`, the EC2 `Describe*` calls and the `openTunnel`
//! WebSocket on one loopback port and runs one real OpenSSH `sshd` per instance. This library is
//! the client side of it: [`SimProcess`] starts the binary and reads its ready line ([`SimInfo`]),
//! [`SimControl`] drives the fault-injection API under `/_sim/`, and [`presign_open_tunnel_url`] /
//! [`TunnelListener`] open tunnels the way `aws ec2-instance-connect open-tunnel` does.

mod control;
mod presign;
mod process;
mod tunnel_listener;
pub mod wire;

pub use control::{SimControl, SimControlError};
pub use presign::{PresignError, TunnelTarget, presign_open_tunnel_url};
pub use process::{SimProcess, SimProcessError};
pub use tunnel_listener::TunnelListener;
pub use wire::{
    CpCall, CpFaultMode, CpFaults, CpFaultsPatch, CpInstance, CpStatus, Faults, FaultsPatch,
    SimInfo, SimInstance, SimStatus,
};

/// The one Instance Connect Endpoint a simulator serves.
pub const ENDPOINT_ID: &str = "eice-0123456789abcdef0";
/// The VPC and subnet every simulated instance and the endpoint live in.
pub const VPC_ID: &str = "vpc-0sim";
pub const SUBNET_ID: &str = "subnet-0sim";
