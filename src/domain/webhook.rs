//! The parts of a webhook, each parsed once from client input.

use std::collections::BTreeMap;
use std::fmt;

use url::{Host, Url};

use super::ssrf::NetworkPolicy;

/// The event catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ResponseCompleted,
    ResponseStarted,
    /// Sent only by the test route; not subscribable.
    WebhookTest,
    /// Operational notices to `HOOKD_OPS_WEBHOOK_URL`; not subscribable.
    WebhookDisabled,
    WebhookEnabled,
    /// A message to a patient or an admin, owed to a channel's queue (SPEC §10); not
    /// subscribable.
    EmailMessage,
    SmsMessage,
}

impl EventType {
    /// The types a webhook may subscribe to, with their descriptions.
    pub const SUBSCRIBABLE: &[(EventType, &'static str)] = &[
        (
            EventType::ResponseCompleted,
            "A respondent completed a survey response.",
        ),
        (
            EventType::ResponseStarted,
            "A respondent saved a survey response for the first time.",
        ),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResponseCompleted => "survey.response_completed",
            Self::ResponseStarted => "survey.response_started",
            Self::WebhookTest => "webhook.test",
            Self::WebhookDisabled => "webhook.disabled",
            Self::WebhookEnabled => "webhook.enabled",
            Self::EmailMessage => "message.email",
            Self::SmsMessage => "message.sms",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::ResponseCompleted,
            Self::ResponseStarted,
            Self::WebhookTest,
            Self::WebhookDisabled,
            Self::WebhookEnabled,
            Self::EmailMessage,
            Self::SmsMessage,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }

    /// A name a webhook may subscribe to.
    pub fn parse_subscribable(name: &str) -> Option<Self> {
        Self::parse(name).filter(|t| Self::SUBSCRIBABLE.iter().any(|(s, _)| s == t))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An absolute URL that passes the SSRF rule for its scheme, host name and IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    pub const MAX_LEN: usize = 2000;

    pub fn parse(text: &str, policy: &NetworkPolicy) -> Result<Self, String> {
        if text.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        let url = Url::parse(text).map_err(|e| format!("must be an absolute URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => return Err("must use https (http needs HOOKD_ALLOW_HTTP)".into()),
            _ => return Err("must be an https:// URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let target = Self(url);
        target.check_host(policy)?;
        Ok(target)
    }

    /// The name rule for host names, the address rule for IP literals. Run again before
    /// every request: the resolver hook never sees IP literals.
    pub fn check_host(&self, policy: &NetworkPolicy) -> Result<(), String> {
        match self.0.host() {
            Some(Host::Domain(name)) if policy.permits_host_name(name) => Ok(()),
            Some(Host::Domain(_)) => {
                Err("host is an internal name (allow it with HOOKD_ALLOW_HOSTS)".into())
            }
            Some(Host::Ipv4(ip)) if policy.permits_ip(ip.into()) => Ok(()),
            Some(Host::Ipv6(ip)) if policy.permits_ip(ip.into()) => Ok(()),
            Some(_) => Err("address is private, loopback or reserved (allow the range with HOOKD_ALLOW_NETWORKS)".into()),
            None => Err("must have a host".into()),
        }
    }

    /// The destination host, the key of the per-host rate limit.
    pub fn host_key(&self) -> String {
        self.0.host_str().unwrap_or_default().to_ascii_lowercase()
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A signing secret. Its `Debug` never shows it; no endpoint returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let chars = text.chars().count();
        if !(16..=500).contains(&chars) {
            return Err("must be 16 to 500 characters".into());
        }
        Ok(Self(text.to_owned()))
    }

    /// Rebuilds a secret read back from the store.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A webhook's signing secrets as stored: the current one, and the one it replaced with the
/// time that one stops signing. Which of them sign is decided per request, from the clock
/// ([`SigningSecrets::at`]), so a server that runs for weeks stops the old one on time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningSecrets {
    pub current: Option<Secret>,
    /// The replaced secret and when it stops signing (Unix milliseconds).
    pub previous: Option<(Secret, i64)>,
}

impl SigningSecrets {
    /// The secrets that sign a request sent at `now` (Unix milliseconds): the current one
    /// first, then the previous one until its overlap ends. None at all without a current
    /// secret: removing the secret stops signing at once.
    pub fn at(&self, now: i64) -> Vec<Secret> {
        let Some(current) = &self.current else {
            return Vec::new();
        };
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| *until > now)
            .map(|(secret, _)| secret.clone());
        std::iter::once(current.clone()).chain(previous).collect()
    }
}

/// The webhook's own request headers: valid names, none reserved, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(BTreeMap<String, String>);

impl CustomHeaders {
    pub const MAX_COUNT: usize = 20;
    pub const MAX_VALUE_LEN: usize = 1000;
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
    ];

    /// Parses every header, reporting each bad one as `(header name, message)`.
    pub fn parse(pairs: &BTreeMap<String, String>) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        if pairs.len() > Self::MAX_COUNT {
            errors.push((
                String::new(),
                format!("at most {} headers", Self::MAX_COUNT),
            ));
        }
        for (name, value) in pairs {
            if let Err(message) = Self::check(name, value) {
                errors.push((name.clone(), message));
            }
        }
        if errors.is_empty() {
            Ok(Self(pairs.clone()))
        } else {
            Err(errors)
        }
    }

    fn check(name: &str, value: &str) -> Result<(), String> {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err("is not a valid header name".into());
        }
        let lower = name.to_ascii_lowercase();
        if Self::RESERVED.contains(&lower.as_str())
            || lower.starts_with("x-webhook-")
            || lower.starts_with("webhook-")
        {
            return Err("is reserved by hookd".into());
        }
        if value.chars().count() > Self::MAX_VALUE_LEN {
            return Err(format!(
                "value must be at most {} characters",
                Self::MAX_VALUE_LEN
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err("value has characters a header cannot carry".into());
        }
        Ok(())
    }

    pub fn from_stored(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// Delays in seconds before attempt 2, 3, ...: 0 to 10 of them, each 1 to 86,400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy(Vec<u32>);

impl RetryPolicy {
    pub const MAX_RETRIES: usize = 10;
    pub const MAX_DELAY_SECS: u32 = 86_400;

    pub fn parse(delays: &[i64]) -> Result<Self, String> {
        if delays.len() > Self::MAX_RETRIES {
            return Err(format!("at most {} delays", Self::MAX_RETRIES));
        }
        delays
            .iter()
            .map(|&d| {
                u32::try_from(d)
                    .ok()
                    .filter(|d| (1..=Self::MAX_DELAY_SECS).contains(d))
                    .ok_or_else(|| {
                        format!("each delay must be 1 to {} seconds", Self::MAX_DELAY_SECS)
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn from_stored(delays: Vec<u32>) -> Self {
        Self(delays)
    }

    /// The delay after failure `n` (1-based), or `None` when the policy is exhausted.
    pub fn delay_after_failure(&self, n: u32) -> Option<u32> {
        let index = usize::try_from(n).ok()?.checked_sub(1)?;
        self.0.get(index).copied()
    }

    pub fn delays(&self) -> &[u32] {
        &self.0
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self(vec![1, 5, 30, 300, 1800, 7200])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_policy() -> NetworkPolicy {
        NetworkPolicy {
            allow_http: true,
            ..NetworkPolicy::default()
        }
    }

    #[test]
    fn urls_need_https_unless_http_is_allowed() {
        let strict = NetworkPolicy::default();
        assert!(WebhookUrl::parse("https://his.example.com/hook", &strict).is_ok());
        assert!(WebhookUrl::parse("http://his.example.com/hook", &strict).is_err());
        assert!(WebhookUrl::parse("http://his.example.com/hook", &open_policy()).is_ok());
        assert!(WebhookUrl::parse("ftp://his.example.com/hook", &open_policy()).is_err());
        assert!(WebhookUrl::parse("/relative", &strict).is_err());
    }

    #[test]
    fn ip_literal_urls_are_judged_in_every_spelling() {
        let strict = NetworkPolicy::default();
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fd00::1]/",
            "https://169.254.169.254/latest",
            "https://100.64.1.1/",
        ] {
            assert!(WebhookUrl::parse(url, &strict).is_err(), "{url}");
        }
        assert!(WebhookUrl::parse("https://93.184.216.34/", &strict).is_ok());
    }

    #[test]
    fn the_previous_secret_signs_until_its_overlap_ends_and_never_without_a_current_one() {
        let new = Secret::from_stored("new-secret-0123456789".into());
        let old = Secret::from_stored("old-secret-0123456789".into());
        let rotated = SigningSecrets {
            current: Some(new.clone()),
            previous: Some((old.clone(), 1_000)),
        };
        assert_eq!(rotated.at(999), vec![new.clone(), old.clone()]);
        assert_eq!(rotated.at(1_000), vec![new]);
        let removed = SigningSecrets {
            current: None,
            previous: Some((old, 1_000)),
        };
        assert!(removed.at(0).is_empty());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = Secret::parse("a-very-secret-value-123").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert!(Secret::parse("short").is_err());
        assert!(Secret::parse(&"x".repeat(501)).is_err());
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        for name in [
            "Host",
            "content-type",
            "X-Webhook-Signature",
            "webhook-id",
            "bad name",
        ] {
            let map = BTreeMap::from([(name.to_owned(), "v".to_owned())]);
            assert!(CustomHeaders::parse(&map).is_err(), "{name}");
        }
        let ok = BTreeMap::from([("X-Clinic".to_owned(), "north".to_owned())]);
        assert!(CustomHeaders::parse(&ok).is_ok());
    }

    #[test]
    fn retry_policy_bounds_and_lookup() {
        assert!(RetryPolicy::parse(&[]).is_ok());
        assert!(RetryPolicy::parse(&[0]).is_err());
        assert!(RetryPolicy::parse(&[86_401]).is_err());
        assert!(RetryPolicy::parse(&[1; 11]).is_err());
        let policy = RetryPolicy::parse(&[1, 5]).unwrap();
        assert_eq!(policy.delay_after_failure(1), Some(1));
        assert_eq!(policy.delay_after_failure(2), Some(5));
        assert_eq!(policy.delay_after_failure(3), None);
        assert_eq!(policy.delay_after_failure(0), None);
    }
}

/// How a webhook's deliveries go out (SPEC §3, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryOrder {
    /// Up to `HOOKD_MAX_IN_FLIGHT` attempts at once; no order promised.
    #[default]
    Concurrent,
    /// One attempt at a time, in the order the events were stored; a delivery waiting
    /// for a retry holds back the ones behind it.
    Fifo,
}

impl DeliveryOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrent => "concurrent",
            Self::Fifo => "fifo",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Concurrent, Self::Fifo]
            .into_iter()
            .find(|order| order.as_str() == text)
    }
}

/// Read straight from its column, without an allocation (it is read for every event).
impl rusqlite::types::FromSql for DeliveryOrder {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        Self::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown ordering `{text}`").into())
        })
    }
}
