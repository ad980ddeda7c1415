//! Where the targets of a reference set may point. A kerchunk set is data somebody else wrote:
//! without a check, a target of `/etc/passwd`, `../../secrets` or `http://169.254.169.254/`
//! turns the server into a reader of its own host or network. A [`Confinement`] holds the
//! roots the operator allowed; every target is normalised (`..` removed, symlinks resolved)
//! before it is compared with them.

use std::{
    net::{IpAddr, ToSocketAddrs},
    path::{Component, Path, PathBuf},
};

use url::Url;

/// One place targets may be under.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    /// A local folder (canonical).
    Folder(PathBuf),
    /// A URL prefix: same scheme, host and port, path under `path`.
    Prefix { scheme: String, host: String, port: Option<u16>, path: String },
    /// Any host of a scheme (`https://*`), public addresses only.
    AnyHost(String),
}

/// The roots a reference set's targets must stay under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    roots: Vec<Root>,
}

fn parse_root(text: &str) -> Result<Root, String> {
    if let Some(scheme) = text.strip_suffix("://*") {
        return Ok(Root::AnyHost(scheme.to_ascii_lowercase()));
    }
    if !text.contains("://") || text.starts_with("file://") {
        let path = match text.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None => PathBuf::from(text),
        };
        if !path.is_absolute() {
            return Err(format!("allowed target {text:?} is neither an absolute folder nor a URL"));
        }
        return Ok(Root::Folder(canonical(&path)));
    }
    let url = Url::parse(text).map_err(|e| format!("allowed target {text:?}: {e}"))?;
    let host = url.host_str().ok_or_else(|| format!("allowed target {text:?} has no host"))?.to_ascii_lowercase();
    let mut path = url.path().to_owned();
    if !path.ends_with('/') {
        path.push('/');
    }
    Ok(Root::Prefix { scheme: url.scheme().to_owned(), host, port: url.port_or_known_default(), path })
}

/// `path` with symlinks resolved where it exists, and `.`/`..` removed lexically where it does
/// not (a missing target is then a read error, not a way out).
fn canonical(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    // The longest existing ancestor may itself be a symlink.
    match out.parent().map(std::fs::canonicalize) {
        Some(Ok(parent)) => out.file_name().map_or(parent.clone(), |name| parent.join(name)),
        _ => out,
    }
}

/// Whether `ip` is on this host or a private network: loopback, link-local (cloud metadata
/// services), private ranges, unique-local, unspecified, or those mapped into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

impl Confinement {
    /// The roots of the set at `location`: its own folder (a local set) or its own host or
    /// bucket (a remote set), plus the operator's `allow` entries (absolute folders, URL
    /// prefixes, `scheme://*` for any public host).
    ///
    /// # Errors
    /// An `allow` entry that is neither.
    pub fn of_set(location: &str, allow: &[String]) -> Result<Self, String> {
        let own = if crate::Stores::is_remote(location) {
            let url = Url::parse(location).map_err(|e| format!("{location}: {e}"))?;
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            Root::Prefix {
                scheme: url.scheme().to_owned(),
                host,
                port: url.port_or_known_default(),
                path: "/".to_owned(),
            }
        } else {
            let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
            let path = if path.is_absolute() { path } else { std::env::current_dir().unwrap_or_default().join(path) };
            Root::Folder(canonical(path.parent().unwrap_or(Path::new("/"))))
        };
        let mut roots = vec![own];
        for entry in allow {
            roots.push(parse_root(entry)?);
        }
        Ok(Self { roots })
    }

    /// `target` as it is to be read (local paths canonical), if it is under a root.
    ///
    /// # Errors
    /// Why it is refused: outside every root, a local path where only URLs are allowed, or a
    /// host of an `scheme://*` root that resolves to an internal address.
    pub fn check(&self, target: &str) -> Result<String, String> {
        if !crate::Stores::is_remote(target) {
            let path = Path::new(target.strip_prefix("file://").unwrap_or(target));
            if !path.is_absolute() {
                return Err(format!("target {target} is not an absolute path"));
            }
            let real = canonical(path);
            let inside = self.roots.iter().any(|root| matches!(root, Root::Folder(folder) if real.starts_with(folder)));
            return match inside {
                true => Ok(real.to_string_lossy().into_owned()),
                false => Err(format!("target {target} is outside the folders this set may read")),
            };
        }
        let url = Url::parse(target).map_err(|e| format!("target {target}: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default();
        for root in &self.roots {
            match root {
                Root::Prefix { scheme, host: root_host, port: root_port, path }
                    if scheme == url.scheme()
                        && *root_host == host
                        && *root_port == port
                        && url.path().starts_with(path.as_str()) =>
                {
                    return Ok(url.to_string());
                }
                Root::AnyHost(scheme) if scheme == url.scheme() => {
                    let addresses: Vec<IpAddr> = match url.host() {
                        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
                        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
                        _ => (host.as_str(), port.unwrap_or(443))
                            .to_socket_addrs()
                            .map_err(|e| format!("target {target}: {e}"))?
                            .map(|a| a.ip())
                            .collect(),
                    };
                    if addresses.iter().copied().any(is_internal) {
                        return Err(format!("target {target} is on an internal address; allow its host explicitly"));
                    }
                    return Ok(url.to_string());
                }
                _ => {}
            }
        }
        Err(format!("target {target} is outside the hosts this set may read"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_sets_read_their_own_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let sets = dir.path().join("sets");
        std::fs::create_dir(&sets).unwrap();
        std::fs::write(sets.join("a.nc"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", sets.join("link.nc")).unwrap();
        let set = sets.join("set.json");
        let confined = Confinement::of_set(set.to_str().unwrap(), &[]).unwrap();
        let real = std::fs::canonicalize(sets.join("a.nc")).unwrap();
        assert_eq!(confined.check(sets.join("a.nc").to_str().unwrap()).unwrap(), real.to_str().unwrap());
        assert_eq!(confined.check(&format!("file://{}", sets.join("a.nc").display())).unwrap(), real.to_str().unwrap());
        for outside in
            ["/etc/passwd", &format!("{}/../../etc/passwd", sets.display()), sets.join("link.nc").to_str().unwrap()]
        {
            assert!(confined.check(outside).unwrap_err().contains("outside"), "{outside}");
        }
        // Missing files inside the folder are allowed (a read error later), missing ones
        // outside are not.
        assert!(confined.check(sets.join("later.nc").to_str().unwrap()).is_ok());
        assert!(confined.check(&format!("{}/../later.nc", sets.display())).is_err());
        assert!(confined.check("http://127.0.0.1:9/x.nc").unwrap_err().contains("outside"));
        assert!(confined.check("relative.nc").is_err());
        let widened = Confinement::of_set(set.to_str().unwrap(), &["/etc".to_owned()]).unwrap();
        assert!(widened.check("/etc/passwd").is_ok());
    }

    #[test]
    fn remote_sets_read_their_own_host_and_never_local_files() {
        let confined = Confinement::of_set("https://data.example.org/refs/set.json", &[]).unwrap();
        assert!(confined.check("https://data.example.org/files/a.nc").is_ok());
        assert!(confined.check("https://data.example.org:443/files/a.nc").is_ok());
        for refused in [
            "/etc/passwd",
            "file:///etc/passwd",
            "https://other.example.org/a.nc",
            "http://data.example.org/a.nc",
            "https://data.example.org:8443/a.nc",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(confined.check(refused).is_err(), "{refused}");
        }
        let s3 = Confinement::of_set("s3://bucket/refs/set.json", &["s3://public/cmip6".to_owned()]).unwrap();
        assert!(s3.check("s3://bucket/data/a.nc").is_ok());
        assert!(s3.check("s3://public/cmip6/a.nc").is_ok());
        assert!(s3.check("s3://public/cmip6-private/a.nc").is_err());
        assert!(s3.check("s3://other/a.nc").is_err());
        let any = Confinement::of_set("https://data.example.org/set.json", &["https://*".to_owned()]).unwrap();
        for internal in [
            "https://127.0.0.1/a",
            "https://10.1.2.3/a",
            "https://[::1]/a",
            "https://[::ffff:192.168.0.1]/a",
            "https://localhost/a",
        ] {
            assert!(any.check(internal).unwrap_err().contains("internal"), "{internal}");
        }
        assert!(any.check("http://93.184.216.34/a").is_err(), "another scheme");
        assert!(any.check("https://93.184.216.34/a").is_ok());
        assert!(Confinement::of_set("/x/set.json", &["relative/folder".to_owned()]).is_err());
    }
}
