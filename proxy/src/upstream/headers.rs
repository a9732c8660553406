//! Header rules for both directions: hop-by-hop headers (RFC 9110, section 7.6.1) end at
//! the proxy, the caller's credentials never travel upstream, and every Cosmos header
//! passes unchanged.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

/// Headers that describe one connection, never the message, so they are not forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The date the signature covers, which the proxy sets afresh.
pub(super) static X_MS_DATE: HeaderName = HeaderName::from_static("x-ms-date");

/// Removes hop-by-hop headers, including those the `Connection` header lists. The pipeline
/// calls it on each request as it arrives, before anything reads the headers.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, and one pass over their names costs less than a lookup
    // of each hop-by-hop name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Prepares the caller's headers for the account: drops the caller's `Authorization` and
/// dates (the proxy signs afresh), and points `Host` at the account. The hop-by-hop headers
/// are already gone, because the pipeline removes them on arrival.
pub(super) fn prepare_request_headers(headers: &mut HeaderMap, host: Option<&HeaderValue>) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::DATE);
    headers.remove(&X_MS_DATE);
    headers.remove(header::HOST);
    if let Some(host) = host {
        headers.insert(header::HOST, host.clone());
    }
}

/// Prepares the account's response headers for the caller. `Content-Location` names the
/// account's own address, which callers of the proxy have no use for and should not learn.
pub(super) fn prepare_response_headers(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers);
    headers.remove(header::CONTENT_LOCATION);
}

/// Returns the `Host` header for the account: its host, and its port when not the default.
pub(super) fn host_header(endpoint: &Url) -> Option<HeaderValue> {
    let host = endpoint.host_str()?;
    let value = match endpoint.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_loses_credentials_and_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("type=aad&ver=1.0&sig=jwt"),
        );
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-ms-date", HeaderValue::from_static("old"));
        headers.insert(header::HOST, HeaderValue::from_static("proxy.local"));
        headers.insert(
            "x-ms-documentdb-partitionkey",
            HeaderValue::from_static("[\"a\"]"),
        );
        headers.insert("x-ms-session-token", HeaderValue::from_static("0:1#2"));

        let endpoint = Url::parse("https://account.example:8081/").unwrap();
        let host = host_header(&endpoint);
        remove_hop_by_hop(&mut headers);
        prepare_request_headers(&mut headers, host.as_ref());

        assert!(headers.get(header::AUTHORIZATION).is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert!(headers.get("x-private").is_none());
        assert!(headers.get(header::TRANSFER_ENCODING).is_none());
        assert!(headers.get("x-ms-date").is_none());
        assert_eq!(headers.get(header::HOST).unwrap(), "account.example:8081");
        assert_eq!(
            headers.get("x-ms-documentdb-partitionkey").unwrap(),
            "[\"a\"]"
        );
        assert_eq!(headers.get("x-ms-session-token").unwrap(), "0:1#2");
    }

    #[test]
    fn each_hop_by_hop_header_is_removed_alone() {
        for name in HOP_BY_HOP {
            let mut headers = HeaderMap::new();
            headers.insert(name.clone(), HeaderValue::from_static("1"));
            headers.insert("x-ms-activity-id", HeaderValue::from_static("a1"));
            prepare_response_headers(&mut headers);
            assert!(headers.get(&name).is_none(), "{name} was kept");
            assert_eq!(headers.get("x-ms-activity-id").unwrap(), "a1");
        }
    }

    #[test]
    fn headers_without_hop_by_hop_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-request-charge", HeaderValue::from_static("1.23"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let before = headers.clone();
        prepare_response_headers(&mut headers);
        assert_eq!(headers, before);
    }

    #[test]
    fn host_omits_the_default_port() {
        let endpoint = Url::parse("https://account.example:443/").unwrap();
        assert_eq!(host_header(&endpoint).unwrap(), "account.example");
    }

    #[test]
    fn response_keeps_cosmos_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert("x-ms-request-charge", HeaderValue::from_static("1.23"));
        headers.insert("x-ms-substatus", HeaderValue::from_static("1002"));
        headers.insert(
            header::CONTENT_LOCATION,
            HeaderValue::from_static("https://10.0.0.5:8081/dbs/d"),
        );
        prepare_response_headers(&mut headers);
        assert!(headers.get(header::CONNECTION).is_none());
        assert!(headers.get(header::CONTENT_LOCATION).is_none());
        assert_eq!(headers.get("x-ms-request-charge").unwrap(), "1.23");
        assert_eq!(headers.get("x-ms-substatus").unwrap(), "1002");
    }
}
