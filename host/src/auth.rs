//! Optional access control: `[[auth.groups]]` put datasets (by id pattern) behind bearer
//! tokens. Without groups every dataset is public, as in cloudify. Tokens are read from files
//! or environment variables and only their SHA-256 is kept. A request's access is set for the
//! whole of its handling (a task-local set by [`guard`]), so that every way a plugin reaches datasets (the
//! list, metadata, chunks) sees only what the caller may read.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{error::json_error, registry::Registry};

/// `[auth]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.groups]]`.
    pub groups: Vec<GroupConfig>,
}

/// One `[[auth.groups]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// A name for logs.
    pub name: String,
    /// Dataset id patterns (`cmip6.*`, `era5-?`), glob syntax.
    pub datasets: Vec<String>,
    /// Whether the group's datasets are open to everyone (exempting them from other groups).
    pub public: bool,
    /// A file of tokens, one per line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<std::path::PathBuf>,
    /// An environment variable holding tokens separated by whitespace or commas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_env: Option<String>,
}

struct Group {
    patterns: Vec<glob::Pattern>,
    public: bool,
}

/// The groups and the digests of their tokens.
pub struct Auth {
    groups: Vec<Group>,
    /// SHA-256 of a token → the groups it opens.
    tokens: HashMap<[u8; 32], Vec<usize>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// The groups of `config`, their tokens read; `None` when there are none.
    ///
    /// # Errors
    /// A pattern that is no glob, or a token file or variable that cannot be read.
    pub fn new(config: &AuthConfig) -> Result<Option<Self>, String> {
        if config.groups.is_empty() {
            return Ok(None);
        }
        let mut groups = Vec::new();
        let mut tokens: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
        for (index, group) in config.groups.iter().enumerate() {
            let patterns = group
                .datasets
                .iter()
                .map(|p| glob::Pattern::new(p).map_err(|e| format!("auth group '{}': pattern {p:?}: {e}", group.name)))
                .collect::<Result<_, _>>()?;
            let mut texts = Vec::new();
            if let Some(file) = &group.tokens_file {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("auth group '{}': {}: {e}", group.name, file.display()))?;
                texts.extend(
                    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned),
                );
            }
            if let Some(variable) = &group.tokens_env {
                let text = std::env::var(variable)
                    .map_err(|_| format!("auth group '{}': variable {variable} is not set", group.name))?;
                texts.extend(text.split([',', ' ', '\n', '\t']).filter(|t| !t.is_empty()).map(str::to_owned));
            }
            for token in texts {
                tokens.entry(digest(&token)).or_default().push(index);
            }
            groups.push(Group { patterns, public: group.public });
        }
        Ok(Some(Self { groups, tokens }))
    }

    /// Whether holders of `opened` (group indices) may read dataset `id`.
    fn readable(&self, id: &str, opened: &[usize]) -> bool {
        let matching = |group: &Group| group.patterns.iter().any(|p| p.matches(id));
        if self.groups.iter().any(|g| g.public && matching(g)) {
            return true;
        }
        let mut protected = self.groups.iter().enumerate().filter(|(_, g)| !g.public && matching(g)).peekable();
        protected.peek().is_none() || protected.any(|(index, _)| opened.contains(&index))
    }
}

/// What the current request may read: set for the whole of its handling.
#[derive(Clone)]
pub struct Caller {
    auth: Arc<Auth>,
    opened: Arc<[usize]>,
}

tokio::task_local! {
    static CALLER: Caller;
}

impl Caller {
    /// Whether the caller of the request being handled may read dataset `id`. Outside a
    /// request (plugin start-up, work a plugin moved elsewhere) only public datasets are.
    pub fn may_read(auth: Option<&Arc<Auth>>, id: &str) -> bool {
        let Some(auth) = auth else { return true };
        CALLER.try_with(|caller| caller.auth.readable(id, &caller.opened)).unwrap_or_else(|_| auth.readable(id, &[]))
    }
}

/// The token a request presents: `Authorization: Bearer …` or `X-API-Key`.
fn presented(req: &Request) -> Option<&str> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::trim))
        .or_else(|| header("x-api-key").map(str::trim))
}

/// The dataset id a path names (`/datasets/{id}/...`), percent-decoded.
fn dataset_of(path: &str) -> Option<String> {
    let id = path.strip_prefix("/datasets/")?.split('/').next().filter(|id| !id.is_empty())?;
    percent_encoding::percent_decode_str(id).decode_utf8().ok().map(|id| id.into_owned())
}

/// The middleware: 401 for an unknown token, 401/403 for a dataset the caller may not read,
/// and the caller's access set for everything the request does.
pub async fn guard(axum::extract::State(auth): axum::extract::State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let opened: Arc<[usize]> = match presented(&req) {
        None => Arc::from(Vec::new()),
        Some(token) => match auth.tokens.get(&digest(token)) {
            Some(groups) => Arc::from(groups.clone()),
            None => return challenge(StatusCode::UNAUTHORIZED, "unknown token"),
        },
    };
    if let Some(id) = dataset_of(req.uri().path()) {
        if !auth.readable(&id, &opened) {
            return match presented(&req) {
                None => challenge(StatusCode::UNAUTHORIZED, "this dataset needs a token (Authorization: Bearer …)"),
                Some(_) => challenge(StatusCode::FORBIDDEN, "this token does not open this dataset"),
            };
        }
    }
    let caller = Caller { auth: Arc::clone(&auth), opened };
    CALLER.scope(caller, next.run(req)).await
}

fn challenge(status: StatusCode, message: &str) -> Response {
    let mut response = json_error(status, message).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
    }
    response
}

/// Attaches `auth` to `registry`, so that every lookup obeys it.
pub fn protect(registry: &Registry, auth: Option<Auth>) {
    if let Some(auth) = auth {
        registry.set_auth(Arc::new(auth));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_decide_who_reads_what() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# team\nsecret-a\n").unwrap();
        let config = AuthConfig {
            groups: vec![
                GroupConfig {
                    name: "restricted".into(),
                    datasets: vec!["era5*".into(), "cmip6.*".into()],
                    tokens_file: Some(file),
                    ..GroupConfig::default()
                },
                GroupConfig {
                    name: "open".into(),
                    datasets: vec!["cmip6.public*".into()],
                    public: true,
                    ..GroupConfig::default()
                },
            ],
        };
        let auth = Auth::new(&config).unwrap().unwrap();
        let a = auth.tokens[&digest("secret-a")].clone();
        assert!(auth.readable("demo", &[]), "datasets of no group are public");
        assert!(!auth.readable("era5-t2m", &[]) && auth.readable("era5-t2m", &a));
        assert!(auth.readable("cmip6.public-tas", &[]), "a public group exempts its datasets");
        assert!(!auth.tokens.contains_key(&digest("secret-b")));
        assert!(Auth::new(&AuthConfig::default()).unwrap().is_none());
        let bad = AuthConfig { groups: vec![GroupConfig { datasets: vec!["[".into()], ..GroupConfig::default() }] };
        assert!(Auth::new(&bad).is_err());
    }
}
