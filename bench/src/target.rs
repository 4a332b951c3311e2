//! Instance URLs: loopback only, plain HTTP.

use std::fmt;

use url::{Host, Url};

use super::BenchError;

/// One Canopy instance: its HTTP base (no trailing slash) and its canvas WebSocket URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub base: String,
    pub ws: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl Target {
    /// Parses `http://127.0.0.1:8080` and the like. Anything that is not plain HTTP on a
    /// loopback host (127.0.0.0/8, ::1, localhost) is refused: the generator only ever loads a
    /// server on this machine.
    pub fn parse(raw: &str) -> Result<Target, BenchError> {
        let usage = |why: &str| BenchError::Usage(format!("--url {raw}: {why}"));
        let url = Url::parse(raw).map_err(|e| usage(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(usage("only http:// URLs are supported"));
        }
        let loopback = match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback {
            return Err(usage(
                "only loopback hosts (127.0.0.0/8, ::1, localhost) may be loaded",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(usage("credentials in the URL are not supported"));
        }
        if !(url.path().is_empty() || url.path() == "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(usage(
                "give the instance base URL only, e.g. http://127.0.0.1:8080",
            ));
        }
        let mut base = url.clone();
        base.set_path("");
        let base = base.as_str().trim_end_matches('/').to_string();
        let mut ws = url;
        ws.set_scheme("ws")
            .map_err(|_| usage("cannot derive the WebSocket URL"))?;
        ws.set_path("/ws");
        Ok(Target {
            base,
            ws: ws.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.base, "http://127.0.0.1:8080");
        assert_eq!(t.ws, "ws://127.0.0.1:8080/ws");
        assert_eq!(
            Target::parse("http://127.9.8.7:1/").unwrap().ws,
            "ws://127.9.8.7:1/ws"
        );
        assert_eq!(
            Target::parse("http://[::1]:9000").unwrap().ws,
            "ws://[::1]:9000/ws"
        );
        assert_eq!(
            Target::parse("http://LOCALHOST:9000").unwrap().base,
            "http://localhost:9000"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "http://10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]:80",
            "https://127.0.0.1",
            "ws://127.0.0.1:8080",
            "http://127.0.0.1:8080/api",
            "http://u:p@127.0.0.1:8080",
            "127.0.0.1:8080",
            "not a url",
        ] {
            assert!(Target::parse(raw).is_err(), "{raw} should be refused");
        }
    }
}
