//! Leaf: facts about network addresses as URLs write them, and this machine's host name.

/// True for `localhost` and any loopback IP (`127.0.0.0/8`, `::1`), with or without the
/// brackets a URL puts around an IPv6 host.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// This machine's host name (the kernel's on Linux), trimmed; `None` where it cannot be read.
pub(crate) fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts_are_localhost_127_slash_8_and_ipv6_one() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "::1", "[::1]"] {
            assert!(super::is_loopback_host(host), "{host}");
        }
        for host in ["localhost.evil.example", "10.0.0.1", "example.com", "", "[::2]"] {
            assert!(!super::is_loopback_host(host), "{host}");
        }
    }
}
