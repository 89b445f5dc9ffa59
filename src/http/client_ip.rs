//! The client's IP address, for per-IP limits and logs. `X-Forwarded-For` is believed only when
//! the TCP peer is a configured trusted proxy (`TRUSTED_PROXIES`), and then read from the right:
//! the first address that is not itself a trusted proxy is the client. The left-most entry is
//! whatever the client wrote and is never trusted blindly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The resolved client address, stored in the request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Addresses of the proxies in front of us.
pub type TrustedProxies = Arc<Vec<IpAddr>>;

/// Resolves the client address from the peer and the forwarding header.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(64)
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// Middleware: puts [`ClientIp`] into the request.
pub async fn client_ip(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ip = resolve(peer, request.headers(), &trusted);
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.7".parse().expect("ip");
        let spoofed = xff("1.2.3.4, 203.0.113.7");
        assert_eq!(
            resolve(client, &spoofed, &[proxy]),
            client,
            "untrusted peer: header ignored"
        );
        assert_eq!(
            resolve(proxy, &spoofed, &[proxy]),
            client,
            "right-most untrusted hop"
        );
        let chain = xff("1.2.3.4, 203.0.113.7, 10.0.0.1");
        assert_eq!(resolve(proxy, &chain, &[proxy]), client);
        assert_eq!(resolve(proxy, &HeaderMap::new(), &[proxy]), proxy);
        assert_eq!(resolve(proxy, &xff("garbage"), &[proxy]), proxy);
    }
}
