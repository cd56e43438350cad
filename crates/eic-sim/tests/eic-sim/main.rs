//! The simulator against real clients: the AWS SDK, SigV4-signed EC2 Query calls, presigned
//! WebSockets, and russh + SFTP through a tunnel to the real OpenSSH sshd.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_ec2instanceconnect as eic;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use eic_sim::{
    FaultsPatch, SimInfo, SimProcess, SimStatus, TunnelListener, TunnelTarget,
    presign_open_tunnel_url,
};
use russh::client::{Config, Handle, Handler};
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use tokio::io::AsyncWriteExt;

const INSTANCE: &str = "i-0123456789abcdef0";
const OTHER: &str = "i-0fedcba9876543210";

struct AcceptAnyHostKey;

impl Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

type Ssh = Handle<AcceptAnyHostKey>;

fn eic_client(info: &SimInfo, secret: &str) -> eic::Client {
    let credentials = Credentials::new(&info.access_key_id, secret, None, None, "test");
    let config = eic::Config::builder()
        .behavior_version(eic::config::BehaviorVersion::latest())
        .region(eic::config::Region::new(info.region.clone()))
        .credentials_provider(credentials)
        .endpoint_url(&info.aws_endpoint_url)
        .build();
    eic::Client::from_conf(config)
}

fn new_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

async fn push_key(info: &SimInfo, instance: &str, key: &PrivateKey) {
    eic_client(info, &info.secret_access_key)
        .send_ssh_public_key()
        .instance_id(instance)
        .instance_os_user(&info.os_user)
        .ssh_public_key(key.public_key().to_openssh().unwrap())
        .send()
        .await
        .expect("SendSSHPublicKey succeeds");
}

/// SSH over a local tunnel port; `Ok(None)` when authentication is refused.
async fn ssh_login(addr: SocketAddr, user: &str, key: &PrivateKey) -> anyhow::Result<Option<Ssh>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut ssh =
        russh::client::connect_stream(Arc::new(Config::default()), tcp, AcceptAnyHostKey).await?;
    let auth = ssh
        .authenticate_publickey(
            user,
            PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
        )
        .await?;
    Ok(auth.success().then_some(ssh))
}

/// SFTP the way the pool runs it: an exec request that sshd's ForceCommand serves with internal-sftp.
async fn sftp(ssh: &Ssh) -> anyhow::Result<SftpSession> {
    let channel = ssh.channel_open_session().await?;
    channel
        .exec(true, "sudo -n /usr/lib/openssh/sftp-server")
        .await?;
    Ok(SftpSession::new(channel.into_stream()).await?)
}

async fn write(sftp: &SftpSession, path: &str, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = sftp.create(path).await?;
    file.write_all(contents).await?;
    file.shutdown().await?;
    Ok(())
}

/// Polls the status until `done` holds (no timing assertion: the deadline only bounds a hang).
async fn wait_for(sim: &SimProcess, done: impl Fn(&SimStatus) -> bool) -> SimStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = sim.control().status().await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "status never reached the condition: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn presigned(info: &SimInfo, private_ip: &str, now: SystemTime) -> String {
    let credentials = Credentials::new(
        &info.access_key_id,
        &info.secret_access_key,
        None,
        None,
        "test",
    );
    let target = TunnelTarget {
        endpoint_dns: info.endpoint_dns(),
        endpoint_id: eic_sim::ENDPOINT_ID,
        private_ip,
        remote_port: 22,
        max_tunnel_duration: None,
    };
    presign_open_tunnel_url(&target, &credentials, &info.region, now).unwrap()
}

/// The HTTP status and body of a refused WebSocket handshake.
async fn refused(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("the handshake to {url} succeeded"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(other) => panic!("unexpected handshake error {other}"),
    }
}

/// An EC2 Query call signed with SigV4 (service `ec2`), as eic-pool sends it.
async fn ec2_query(info: &SimInfo, secret: &str, form: &str) -> (u16, String) {
    let url = format!("{}/", info.aws_endpoint_url);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = [
        ("content-type", content_type),
        ("host", info.endpoint_dns()),
    ];
    let identity = Credentials::new(&info.access_key_id, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&info.region)
        .name("ec2")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(form.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type)
        .body(form.to_owned());
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn sftp_through_a_tunnel_to_real_sshd_lands_in_the_instance_root() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE, "--instance", OTHER]).unwrap();
    let info = sim.info().clone();
    let key = new_key();
    push_key(&info, INSTANCE, &key).await;

    let listener = TunnelListener::bind(&info, INSTANCE).await.unwrap();
    let ssh = ssh_login(listener.local_addr(), &info.os_user, &key)
        .await
        .unwrap()
        .expect("the pushed key authenticates");
    let sftp = sftp(&ssh).await.unwrap();
    write(&sftp, "/configs/hello.txt", b"hello from the tunnel")
        .await
        .unwrap();
    assert_eq!(
        sftp.read("/configs/hello.txt").await.unwrap(),
        b"hello from the tunnel"
    );
    let on_disk = std::fs::read(sim.instance(INSTANCE).root.join("configs/hello.txt")).unwrap();
    assert_eq!(on_disk, b"hello from the tunnel");
    assert!(!sim.instance(OTHER).root.join("configs/hello.txt").exists());
    for dir in ["configs", "home", "workspace", "plugins", "opt/configs"] {
        assert!(
            sftp.try_exists(format!("/{dir}")).await.unwrap(),
            "/{dir} exists"
        );
    }

    let status = sim.control().status().await.unwrap();
    assert_eq!(
        (
            status.live_tunnels,
            status.tunnels_opened,
            status.keys_pushed
        ),
        (1, 1, 1)
    );

    // The key was pushed for INSTANCE only: OTHER's sshd refuses it.
    let other = TunnelListener::bind(&info, OTHER).await.unwrap();
    assert!(
        ssh_login(other.local_addr(), &info.os_user, &key)
            .await
            .unwrap()
            .is_none()
    );

    drop(sftp);
    ssh.disconnect(russh::Disconnect::ByApplication, "", "en")
        .await
        .unwrap();
    wait_for(&sim, |s| s.live_tunnels == 0).await;
}

#[tokio::test]
async fn an_expired_key_refuses_new_logins_but_keeps_established_sessions() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE]).unwrap();
    let info = sim.info().clone();
    let key = new_key();
    push_key(&info, INSTANCE, &key).await;
    let listener = TunnelListener::bind(&info, INSTANCE).await.unwrap();
    let ssh = ssh_login(listener.local_addr(), &info.os_user, &key)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(sim.control().expire_keys().await.unwrap(), 1);
    assert!(
        ssh_login(listener.local_addr(), &info.os_user, &key)
            .await
            .unwrap()
            .is_none()
    );
    let sftp = sftp(&ssh).await.unwrap();
    write(&sftp, "/workspace/still.txt", b"ok").await.unwrap();
    assert_eq!(sftp.read("/workspace/still.txt").await.unwrap(), b"ok");
}

#[tokio::test]
async fn a_short_key_ttl_expires_keys_by_itself() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE, "--key-ttl", "1s"]).unwrap();
    let info = sim.info().clone();
    let key = new_key();
    push_key(&info, INSTANCE, &key).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listener = TunnelListener::bind(&info, INSTANCE).await.unwrap();
    assert!(
        ssh_login(listener.local_addr(), &info.os_user, &key)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn send_ssh_public_key_validates_like_aws() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE]).unwrap();
    let info = sim.info();
    let public_key = new_key().public_key().to_openssh().unwrap();
    let client = eic_client(info, &info.secret_access_key);
    let send = |instance: &str, key: &str| {
        client
            .send_ssh_public_key()
            .instance_id(instance)
            .instance_os_user(&info.os_user)
            .ssh_public_key(key)
            .send()
    };

    let error = send("i-00000000000000000", &public_key)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_ec2_instance_not_found_exception(), "{error:?}");
    let error = send(INSTANCE, "ssh-ed25519 AAAA")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_invalid_args_exception(), "{error:?}");
    let injected = format!("command=\"/bin/sh\" {public_key}");
    let error = send(INSTANCE, &injected)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_invalid_args_exception(), "{error:?}");

    let wrong_secret = eic_client(info, "not-the-secret")
        .send_ssh_public_key()
        .instance_id(INSTANCE)
        .instance_os_user(&info.os_user)
        .ssh_public_key(&public_key)
        .send()
        .await;
    let error = wrong_secret.unwrap_err();
    assert_eq!(
        error.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{error:?}"
    );
    assert_eq!(sim.control().status().await.unwrap().keys_pushed, 0);
}

#[tokio::test]
async fn ec2_describe_calls_answer_real_shapes_and_check_signatures() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE, "--instance", OTHER]).unwrap();
    let info = sim.info();
    let secret = &info.secret_access_key;

    let (status, xml) = ec2_query(
        info,
        secret,
        &format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={OTHER}"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<DescribeInstancesResponse"), "{xml}");
    assert!(
        xml.contains(&format!("<instanceId>{OTHER}</instanceId>")),
        "{xml}"
    );
    assert!(
        xml.contains("<privateIpAddress>127.0.1.2</privateIpAddress>"),
        "{xml}"
    );
    assert!(
        xml.contains("<vpcId>vpc-0sim</vpcId>") && xml.contains("<subnetId>subnet-0sim</subnetId>"),
        "{xml}"
    );
    assert!(!xml.contains(INSTANCE), "only the asked instance: {xml}");

    let form = "Action=DescribeInstanceConnectEndpoints&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0sim&Filter.2.Name=state&Filter.2.Value.1=create-complete&Filter.2.Value.2=update-complete";
    let (status, xml) = ec2_query(info, secret, form).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains(
            "<instanceConnectEndpointId>eice-0123456789abcdef0</instanceConnectEndpointId>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<dnsName>{}</dnsName>", info.endpoint_dns())),
        "{xml}"
    );

    let other_vpc = "Action=DescribeInstanceConnectEndpoints&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-other";
    let (status, xml) = ec2_query(info, secret, other_vpc).await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("<instanceConnectEndpointSet></instanceConnectEndpointSet>"),
        "{xml}"
    );

    let (status, xml) = ec2_query(
        info,
        secret,
        "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-00000000000000000",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        xml.contains("<Code>InvalidInstanceID.NotFound</Code>"),
        "{xml}"
    );

    let (status, xml) =
        ec2_query(info, "wrong", "Action=DescribeInstances&Version=2016-11-15").await;
    assert_eq!(status, 403, "{xml}");
    assert!(xml.contains("<Code>SignatureDoesNotMatch</Code>"), "{xml}");
    assert_eq!(sim.control().status().await.unwrap().describe_calls, 4);
}

#[tokio::test]
async fn open_tunnel_verifies_the_presigned_url() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE]).unwrap();
    let info = sim.info();
    let now = SystemTime::now();

    let (status, reason) = refused(&presigned(
        info,
        "127.0.1.1",
        now - Duration::from_secs(120),
    ))
    .await;
    assert_eq!((status, reason.as_str()), (403, "Request has expired"));

    let tampered = presigned(info, "127.0.1.1", now).replace("remotePort=22", "remotePort=2222");
    let (status, reason) = refused(&tampered).await;
    assert_eq!(status, 403);
    assert!(reason.contains("signature"), "{reason}");

    let (status, reason) = refused(&presigned(info, "10.9.9.9", now)).await;
    assert_eq!(status, 403);
    assert!(reason.contains("privateIpAddress"), "{reason}");

    let unsigned = format!(
        "ws://{}/openTunnel?instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22&privateIpAddress=127.0.1.1",
        info.endpoint_dns()
    );
    let (status, reason) = refused(&unsigned).await;
    assert_eq!(status, 403);
    assert!(reason.contains("X-Amz-"), "{reason}");

    let (socket, _) = tokio_tungstenite::connect_async(presigned(info, "127.0.1.1", now))
        .await
        .unwrap();
    wait_for(&sim, |s| s.live_tunnels == 1).await;
    drop(socket);
    let status = wait_for(&sim, |s| s.live_tunnels == 0).await;
    assert_eq!((status.tunnels_opened, status.tunnels_rejected), (1, 4));
}

#[tokio::test]
async fn faults_refuse_drop_and_stop_then_recover() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE]).unwrap();
    let info = sim.info().clone();
    let control = sim.control();
    let key = new_key();
    push_key(&info, INSTANCE, &key).await;
    let url = || presigned(&info, "127.0.1.1", SystemTime::now());

    control.refuse_tunnels(true).await.unwrap();
    let (status, reason) = refused(&url()).await;
    assert_eq!(status, 503);
    assert!(reason.contains("refuses new tunnels"), "{reason}");
    control.refuse_tunnels(false).await.unwrap();

    // Dropping tunnels breaks an established session.
    let listener = TunnelListener::bind(&info, INSTANCE).await.unwrap();
    let ssh = ssh_login(listener.local_addr(), &info.os_user, &key)
        .await
        .unwrap()
        .unwrap();
    let session = sftp(&ssh).await.unwrap();
    assert_eq!(control.drop_tunnels().await.unwrap(), 1);
    wait_for(&sim, |s| s.live_tunnels == 0).await;
    assert!(write(&session, "/configs/after-drop", b"x").await.is_err());

    // A stopped sshd refuses tunnels with a reason, and serves again once started.
    control.stop_sshd(INSTANCE).await.unwrap();
    assert!(!control.status().await.unwrap().sshd_running[INSTANCE]);
    let (status, reason) = refused(&url()).await;
    assert_eq!(status, 502);
    assert!(
        reason.contains("cannot connect to 127.0.1.1:22"),
        "{reason}"
    );
    control.start_sshd(INSTANCE).await.unwrap();
    assert!(control.status().await.unwrap().sshd_running[INSTANCE]);
    let ssh = ssh_login(listener.local_addr(), &info.os_user, &key)
        .await
        .unwrap()
        .unwrap();
    let session = sftp(&ssh).await.unwrap();
    write(&session, "/configs/after-restart", b"y")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(sim.instance(INSTANCE).root.join("configs/after-restart")).unwrap(),
        b"y"
    );
}

/// sshd masters (sshd retitles its listener `sshd: /usr/sbin/sshd -f CONFIG [listener] …`; its
/// per-connection children are not listeners) whose config lives under `marker`.
fn sshd_masters(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains("[listener]") && cmdline.contains(marker))
        .count()
}

#[test]
fn sigterm_stops_the_sshds_and_removes_the_root() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE, "--instance", OTHER]).unwrap();
    let root = sim.instance(INSTANCE).root.parent().unwrap().to_path_buf();
    let marker = root.to_string_lossy().into_owned();
    assert_eq!(sshd_masters(&marker), 2);
    drop(sim);
    assert_eq!(sshd_masters(&marker), 0);
    assert!(!root.exists());
}

/// Profile `aws` charges each EC2 `Describe` call (`--describe-delay`, default 100 ms); the
/// control API changes it at run time; profile `none` charges nothing.
#[tokio::test]
async fn the_aws_profile_charges_each_describe_call() {
    let describe = "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0";
    let sim = SimProcess::spawn(&[
        "--instance",
        INSTANCE,
        "--profile",
        "aws",
        "--describe-delay",
        "150ms",
    ])
    .unwrap();
    let info = sim.info();
    assert_eq!(
        sim.control()
            .set_faults(FaultsPatch::default())
            .await
            .unwrap()
            .describe_delay_ms,
        150
    );
    let started = Instant::now();
    let (status, xml) = ec2_query(info, &info.secret_access_key, describe).await;
    assert_eq!(status, 200, "{xml}");
    assert!(started.elapsed() >= Duration::from_millis(150));

    let faults = sim
        .control()
        .set_faults(FaultsPatch {
            describe_delay_ms: Some(0),
            ..FaultsPatch::default()
        })
        .await
        .unwrap();
    assert_eq!(faults.describe_delay_ms, 0);
    drop(sim);

    let sim = SimProcess::spawn(&["--instance", INSTANCE]).unwrap();
    assert_eq!(
        sim.control()
            .set_faults(FaultsPatch::default())
            .await
            .unwrap()
            .describe_delay_ms,
        0,
        "profile none"
    );
}
