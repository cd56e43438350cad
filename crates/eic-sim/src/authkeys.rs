//! `eic-sim authorized-keys --url URL <instance> <user>`: sshd's `AuthorizedKeysCommand`. Prints
//! the keys the simulator at URL holds for that instance and user (pushed within the key TTL).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(url: &str, instance_id: &str, os_user: &str) -> anyhow::Result<()> {
    let authority = url
        .strip_prefix("http://")
        .context("--url must be http://HOST:PORT")?
        .trim_end_matches('/');
    let address = authority
        .to_socket_addrs()
        .context("cannot resolve --url")?
        .next()
        .context("--url resolves to no address")?;
    let mut stream =
        TcpStream::connect_timeout(&address, TIMEOUT).context("cannot reach the simulator")?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("instance", instance_id)
        .append_pair("user", os_user)
        .finish();
    write!(
        stream,
        "GET /_sim/internal/authorized-keys?{query} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("cannot read the simulator's answer")?;
    let response = String::from_utf8(response).context("the answer is not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "the simulator answered {}",
            head.lines().next().unwrap_or("")
        );
    }
    std::io::stdout().write_all(body.as_bytes())?;
    Ok(())
}
