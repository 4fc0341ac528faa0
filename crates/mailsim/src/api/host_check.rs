//! DNS-rebinding protection: the API answers only requests addressed to a loopback name or
//! address. A page on `evil.example` whose name was rebound to 127.0.0.1 still sends
//! `Host: evil.example` (refused with 421 Misdirected Request) and, from script, an
//! `Origin: http://evil.example` (refused with 403 Forbidden). Loopback names are `localhost`,
//! names under `.localhost` (RFC 6761 §6.3), and 127/8 and `::1` literals.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;

/// Whether `authority` (`host[:port]`, `[v6]:port`) names this machine's loopback.
pub fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, _)) => h,
            None => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `Origin` value is a loopback origin (`http://127.0.0.1:8025`).
pub fn is_loopback_origin(origin: &str) -> bool {
    match origin.split_once("://") {
        Some((_, rest)) => is_loopback_authority(rest.split('/').next().unwrap_or_default()),
        None => false,
    }
}

/// Refuses requests addressed to a name that is not loopback.
pub async fn refuse_foreign(request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.or_else(|| request.uri().authority().map(|a| a.as_str()));
    match host {
        Some(h) if is_loopback_authority(h) => {}
        Some(h) => {
            return Problem::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!("Host {h:?} is not a loopback name or address: the API answers only requests for localhost or 127/8 (DNS-rebinding protection)"),
            )
            .into_response();
        }
        None => {
            return Problem::new(StatusCode::MISDIRECTED_REQUEST, "the request has no Host header").into_response();
        }
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or("");
        if !is_loopback_origin(text) {
            return Problem::new(
                StatusCode::FORBIDDEN,
                format!("Origin {text:?} is not a loopback origin (DNS-rebinding protection)"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for yes in
            ["127.0.0.1:8025", "127.9.8.7", "localhost", "LOCALHOST:80", "api.localhost:1", "[::1]:8025", "localhost."]
        {
            assert!(is_loopback_authority(yes), "{yes}");
        }
        for no in
            ["evil.example", "evil.example:8025", "10.0.0.1:8025", "localhost.evil.example", "[::2]:1", "", "[::1"]
        {
            assert!(!is_loopback_authority(no), "{no}");
        }
        assert!(is_loopback_origin("http://127.0.0.1:8025"));
        assert!(!is_loopback_origin("http://evil.example"));
        assert!(!is_loopback_origin("null"));
    }
}
