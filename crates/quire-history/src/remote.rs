//! Where a workspace's repository is pushed: a remote as a user gives it, checked.

use serde::{Deserialize, Serialize};

pub use crate::http::Credentials;

/// The username sent with a token given alone (GitHub and GitLab take any username with an
/// access token; this is the one GitHub documents).
pub const TOKEN_USERNAME: &str = "x-access-token";

const MAX_URL: usize = 2048;
const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 4096;

/// A remote: its URL (never with credentials in it) and the credentials it is pushed with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).field("credentials", &self.credentials).finish()
    }
}

/// Why a remote was refused: the field at fault and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> Refused {
    Refused { field, message: message.into() }
}

impl Remote {
    /// Whether it is a path or `file://` URL on this machine (not a git server).
    pub fn is_local(&self) -> bool {
        let lower = self.url.to_ascii_lowercase();
        !(lower.starts_with("http://") || lower.starts_with("https://"))
    }

    /// Checks a remote as given: an `https://` or `http://` URL of a git server (credentials
    /// written into the URL are taken out of it), an absolute path or a `file://` URL.
    /// `password` alone is a token, sent with the username [`TOKEN_USERNAME`].
    pub fn parse(url: &str, username: Option<&str>, password: Option<&str>) -> Result<Remote, Refused> {
        let url = url.trim();
        let username = username.map(str::trim).filter(|u| !u.is_empty());
        let password = password.filter(|p| !p.is_empty());
        if url.is_empty() {
            return Err(refuse("url", "give the URL of a git repository"));
        }
        if url.len() > MAX_URL {
            return Err(refuse("url", format!("at most {MAX_URL} characters")));
        }
        if username.is_some_and(|u| u.len() > MAX_USERNAME || u.contains(':')) {
            return Err(refuse("username", format!("at most {MAX_USERNAME} characters, without ':'")));
        }
        if password.is_some_and(|p| p.len() > MAX_PASSWORD) {
            return Err(refuse("password", format!("at most {MAX_PASSWORD} characters")));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let mut parsed = reqwest::Url::parse(url).map_err(|e| refuse("url", format!("not a URL ({e}): {url}")))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(refuse("url", "the URL names no host"));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(refuse("url", "a repository's URL has no query or fragment"));
            }
            let in_url = (!parsed.username().is_empty() || parsed.password().is_some())
                .then(|| (decode(parsed.username()), parsed.password().map(decode)));
            let credentials = match (in_url, username, password) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(refuse(
                        "url",
                        "give the credentials either in the URL or as username and password, not both",
                    ));
                }
                (Some((user, pass)), None, None) => {
                    let _ = parsed.set_username("");
                    let _ = parsed.set_password(None);
                    match (user.is_empty(), pass) {
                        (false, Some(p)) => Some(Credentials { username: user, password: p }),
                        (true, Some(p)) => Some(Credentials { username: TOKEN_USERNAME.into(), password: p }),
                        (false, None) => Some(Credentials { username: TOKEN_USERNAME.into(), password: user }),
                        (true, None) => None,
                    }
                }
                (None, Some(_), None) => {
                    return Err(refuse("password", "a username needs its password (or access token)"));
                }
                (None, user, Some(p)) => {
                    Some(Credentials { username: user.unwrap_or(TOKEN_USERNAME).to_string(), password: p.to_string() })
                }
                (None, None, None) => None,
            };
            return Ok(Remote { url: parsed.to_string(), credentials });
        }
        if lower.starts_with("ssh://") || lower.starts_with("git+ssh://") || is_scp_like(url) {
            return Err(refuse(
                "url",
                "SSH remotes are not supported: give the repository's HTTPS URL and an access token as password",
            ));
        }
        if lower.starts_with("git://") {
            return Err(refuse("url", "git:// cannot be pushed to: give the repository's HTTPS URL"));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if !std::path::Path::new(path).is_absolute() {
            return Err(refuse(
                "url",
                "give an https:// (or http://) URL of a git server, an absolute path or a file:// URL",
            ));
        }
        if username.is_some() || password.is_some() {
            return Err(refuse("password", "a path on this machine takes no credentials"));
        }
        Ok(Remote { url: url.to_string(), credentials: None })
    }
}

/// `git@github.com:team/repo.git`: scp's form of an SSH address.
fn is_scp_like(url: &str) -> bool {
    match url.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/') && !url.contains("://"),
        None => false,
    }
}

/// Percent-decoding of a URL's user information.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials { username: u.into(), password: p.into() })
    }

    #[test]
    fn https_remotes_keep_credentials_out_of_the_url() {
        let r = Remote::parse(" https://github.com/team/plans.git ", Some("ada"), Some("tok")).unwrap();
        assert_eq!(r, Remote { url: "https://github.com/team/plans.git".into(), credentials: creds("ada", "tok") });
        let r = Remote::parse("https://github.com/team/plans.git", None, Some("tok")).unwrap();
        assert_eq!(r.credentials, creds(TOKEN_USERNAME, "tok"));
        let r = Remote::parse("https://ada:p%40ss%3Aword@git.example.com/plans", None, None).unwrap();
        assert_eq!(r, Remote { url: "https://git.example.com/plans".into(), credentials: creds("ada", "p@ss:word") });
        let r = Remote::parse("https://ghp_token@github.com/team/plans.git", None, None).unwrap();
        assert_eq!(r.credentials, creds(TOKEN_USERNAME, "ghp_token"));
        assert_eq!(r.url, "https://github.com/team/plans.git");
        let r = Remote::parse("http://127.0.0.1:8080/plans.git", None, None).unwrap();
        assert_eq!(r.credentials, None);
        assert!(
            !format!("{:?}", Remote::parse("https://a.b/c", Some("u"), Some("s3cret")).unwrap()).contains("s3cret")
        );
    }

    #[test]
    fn paths_and_file_urls_take_no_credentials() {
        assert_eq!(Remote::parse("/srv/git/plans.git", None, None).unwrap().url, "/srv/git/plans.git");
        assert_eq!(Remote::parse("file:///srv/git/plans.git", None, None).unwrap().url, "file:///srv/git/plans.git");
        assert_eq!(Remote::parse("/srv/plans.git", None, Some("x")).unwrap_err().field, "password");
    }

    #[test]
    fn what_cannot_be_pushed_to_is_refused_with_what_to_do() {
        let field = |u: &str, user: Option<&str>, pass: Option<&str>| Remote::parse(u, user, pass).unwrap_err();
        assert!(field("git@github.com:team/plans.git", None, None).message.contains("HTTPS URL"));
        assert!(field("ssh://git@github.com/team/plans.git", None, None).message.contains("SSH"));
        assert!(field("git://example.com/plans.git", None, None).message.contains("HTTPS"));
        assert!(field("plans.git", None, None).message.contains("absolute path"));
        assert!(field("", None, None).message.contains("URL"));
        assert!(field("https://", None, None).field == "url");
        assert!(field("https://a.b/c?x=1", None, None).message.contains("query"));
        assert_eq!(field("https://u:p@a.b/c", Some("v"), None).field, "url");
        assert_eq!(field("https://a.b/c", Some("ada"), None).field, "password");
        assert_eq!(field("https://a.b/c", Some("a:b"), Some("p")).field, "username");
        assert_eq!(field(&format!("https://a.b/{}", "x".repeat(MAX_URL)), None, None).field, "url");
        assert_eq!(field("https://a.b/c", None, Some(&"p".repeat(MAX_PASSWORD + 1))).field, "password");
    }
}
