//! Who sent a request: the client address (the TCP peer, or what a trusted proxy says in
//! `X-Forwarded-For`) and the request id (the proxy's `X-Request-Id`, or a fresh one). The
//! outermost middleware puts both into the request extensions, so the log span, the error log
//! and the rate limiters read the same values, and returns the id as `X-Request-Id`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use ipnet::IpNet;

use super::error_log::{REQUEST_ID_HEADER, RequestId};
use super::sync::Middleware;

/// `TRUSTED_PROXIES`: the networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 2001:db8::/32, 192.0.2.7` (a bare address is one host).
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let network = match item.parse::<IpNet>() {
                Ok(network) => network,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is not a CIDR such as 10.0.0.0/8"))?,
            };
            networks.push(network);
        }
        Ok(TrustedProxies(Arc::new(networks)))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client: walking `X-Forwarded-For` from the right (the hop nearest to us), the first
    /// address that is not a trusted proxy. The header is ignored unless the peer is trusted,
    /// so a client cannot choose its own address.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer.to_canonical();
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer.to_canonical();
        for hop in hops.into_iter().rev() {
            let Ok(address) = hop.parse::<IpAddr>() else {
                break; // a malformed hop: trust nothing beyond it
            };
            client = address.to_canonical();
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// The client address of a request (see [`TrustedProxies::client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The request's client address; unspecified when the server runs without peer info
    /// (in-process tests).
    pub fn of(request: &Request) -> IpAddr {
        request
            .extensions()
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |client| client.0)
    }
}

/// The outermost middleware: resolves the client address and the request id, and returns the
/// id in the response's `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestContext(pub TrustedProxies);

impl Middleware for RequestContext {
    /// The request id's header, for the response.
    type Carry = Option<HeaderValue>;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Option<HeaderValue>> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        if let Some(peer) = peer {
            let client = self.0.client(peer, request.headers());
            request.extensions_mut().insert(ClientAddr(client));
        }
        let request_id = RequestId::from_header(request.headers().get(REQUEST_ID_HEADER));
        let header = HeaderValue::from_str(&request_id.0).ok();
        if let Some(header) = &header {
            // The span reads it from the header (it is made before the extensions are seen).
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, header.clone());
        }
        request.extensions_mut().insert(request_id);
        ControlFlow::Continue(header)
    }

    fn after(&self, header: Option<HeaderValue>, mut response: Response) -> Response {
        if let Some(header) = header {
            response.headers_mut().insert(REQUEST_ID_HEADER, header);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").unwrap();
        let headers = forwarded("203.0.113.9");
        assert_eq!(trusted.client(ip("10.1.2.3"), &headers), ip("203.0.113.9"));
        assert_eq!(trusted.client(ip("192.0.2.7"), &headers), ip("203.0.113.9"));
        // Anyone else's header is ignored: a client cannot choose its address.
        assert_eq!(
            trusted.client(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), &headers),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let headers = forwarded("1.1.1.1, 203.0.113.9, 10.0.0.2");
        assert_eq!(trusted.client(ip("10.0.0.1"), &headers), ip("203.0.113.9"));
        let garbled = forwarded("203.0.113.9, not-an-ip");
        assert_eq!(trusted.client(ip("10.0.0.1"), &garbled), ip("10.0.0.1"));
        // An IPv4 peer seen on a dual-stack socket is matched as IPv4.
        assert_eq!(
            trusted.client(ip("::ffff:10.0.0.1"), &forwarded("203.0.113.9")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_cidrs_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }
}
