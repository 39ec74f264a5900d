//! Configuration: one typed struct, read from flags, `HOOKD_*` variables and an optional
//! TOML file (in that order of precedence), validated once at start-up.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::domain::ssrf::{HostRule, NetworkPolicy};
use crate::domain::{Secret, WebhookUrl};

pub mod messaging;
pub use messaging::Messaging;

/// The settings of `hookd serve`, as given (flags and environment). Every field is optional
/// so that a `--config` file can fill what the command line leaves out.
///
/// The fields' comments are also `hookd serve --help`, shown as written: URLs and
/// placeholders such as `<listen address>` stay plain text there, not Markdown.
#[allow(
    rustdoc::bare_urls,
    rustdoc::invalid_html_tags,
    rustdoc::broken_intra_doc_links
)]
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "HOOKD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address and port of the API [default: 127.0.0.1:8080].
    #[arg(long, env = "HOOKD_LISTEN")]
    pub listen: Option<String>,
    /// Folder of the database [default: ./hookd-data].
    #[arg(long, env = "HOOKD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// An admin API key accepted in addition to the stored keys.
    #[arg(long, env = "HOOKD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Permit plain http:// webhook URLs (LAN receivers, tests) [default: false].
    #[arg(long, env = "HOOKD_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub allow_http: Option<bool>,
    /// Comma-separated CIDRs that webhook targets may resolve to although private or
    /// loopback (e.g. the HIS at 10.1.2.0/24).
    #[arg(long, env = "HOOKD_ALLOW_NETWORKS")]
    pub allow_networks: Option<String>,
    /// Comma-separated host names (or .suffixes) accepted although they match a refused
    /// name rule (e.g. his.clinic.local); their addresses must still pass the address rule.
    #[arg(long, env = "HOOKD_ALLOW_HOSTS")]
    pub allow_hosts: Option<String>,
    /// Per-attempt timeout in milliseconds [default: 10000].
    #[arg(long, env = "HOOKD_DELIVERY_TIMEOUT_MS")]
    pub delivery_timeout_ms: Option<u64>,
    /// Max requests per second to one destination host, 0 = unlimited [default: 100].
    #[arg(long, env = "HOOKD_HOST_RATE_LIMIT")]
    pub host_rate_limit: Option<u32>,
    /// Requests per second from one client address without a valid key (patient links,
    /// wrong keys), bursts of twice that, 0 = unlimited [default: 20].
    #[arg(long, env = "HOOKD_PUBLIC_RATE_LIMIT")]
    pub public_rate_limit: Option<u32>,
    /// Consecutive deliveries ending `failed` before a webhook is disabled, 0 = never
    /// [default: 10].
    #[arg(long, env = "HOOKD_AUTO_DISABLE_AFTER")]
    pub auto_disable_after: Option<u32>,
    /// Days to keep finished deliveries, attempts and event payloads [default: 30].
    #[arg(long, env = "HOOKD_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Attempts one webhook may have in flight at once [default: 16].
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u32>,
    /// Seconds the previous secret keeps signing after a secret change, 0 to 604800
    /// [default: 86400].
    #[arg(long, env = "HOOKD_SECRET_OVERLAP_SECONDS")]
    pub secret_overlap_seconds: Option<u64>,
    /// Where operational events (webhook.disabled, webhook.enabled) are sent, through the
    /// same rules as webhooks (SSRF, allow-lists) [default: unset].
    #[arg(long, env = "HOOKD_OPS_WEBHOOK_URL")]
    pub ops_webhook_url: Option<String>,
    /// The secret operational events are signed with (16 to 500 characters).
    #[arg(long, env = "HOOKD_OPS_WEBHOOK_SECRET", hide_env_values = true)]
    pub ops_webhook_secret: Option<String>,
    /// Log format: `text` for people, `json` for collectors [default: text].
    #[arg(long, env = "HOOKD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Base URL patients reach hookd at, for the links of invitations (e.g.
    /// https://survey.clinic.example) [default: http(s)://<listen address>].
    #[arg(long, env = "HOOKD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM file of the listener's certificate chain: with HOOKD_TLS_KEY, the listener
    /// speaks HTTPS only (TLS 1.2+); SIGHUP reloads both files [default: plain HTTP].
    #[arg(long, env = "HOOKD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the private key of HOOKD_TLS_CERT.
    #[arg(long, env = "HOOKD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// A key scrapers must send (`Authorization: Bearer <key>`) to read /metrics, 16
    /// characters or more [default: unset, /metrics is open].
    #[arg(long, env = "HOOKD_METRICS_KEY", hide_env_values = true)]
    pub metrics_key: Option<String>,
    /// PEM file of CA certificates trusted beside the built-in roots, for webhook targets
    /// and gateways behind a clinic's own CA.
    #[arg(long, env = "HOOKD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain hookd presents to receivers that ask for one (mutual TLS).
    #[arg(long, env = "HOOKD_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of HOOKD_CLIENT_CERT.
    #[arg(long, env = "HOOKD_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
    /// Milliseconds a client has to send a request's headers, and then its body
    /// [default: 30000].
    #[arg(long, env = "HOOKD_REQUEST_READ_TIMEOUT_MS")]
    pub request_read_timeout_ms: Option<u64>,
    /// Milliseconds a request may take from its headers to its answer; past it the answer
    /// is 503 `timeout` [default: 60000].
    #[arg(long, env = "HOOKD_HANDLER_TIMEOUT_MS")]
    pub handler_timeout_ms: Option<u64>,
    /// The mail server for email invitations, reminders and admin notices:
    /// smtp://[user:pass@]host[:port] (STARTTLS), smtps://... (TLS), or
    /// smtp://...?tls=none with HOOKD_ALLOW_HTTP [default: unset, no email].
    #[arg(long, env = "HOOKD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of every email, `Name <address>` or an address (needed with HOOKD_SMTP_URL).
    #[arg(long, env = "HOOKD_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// The SMS gateway's endpoint, through the same rules as webhooks (SSRF, allow-lists)
    /// [default: unset, no SMS].
    #[arg(long, env = "HOOKD_SMS_URL")]
    pub sms_url: Option<String>,
    /// Bearer token sent to the SMS gateway.
    #[arg(long, env = "HOOKD_SMS_TOKEN", hide_env_values = true)]
    pub sms_token: Option<String>,
    /// Messages per second to the mail server, and separately to the SMS gateway, 0 for
    /// no limit [default: 10].
    #[arg(long, env = "HOOKD_MESSAGE_RATE_LIMIT")]
    pub message_rate_limit: Option<u32>,
    /// Comma-separated addresses told by email when a webhook is disabled (needs
    /// HOOKD_SMTP_URL).
    #[arg(long, env = "HOOKD_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
}

/// Validated configuration: real types, units in the names.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Accepted beside stored keys; its audit id is `env`.
    pub api_key: Option<String>,
    /// The SSRF exceptions (http, networks, hosts).
    pub network: NetworkPolicy,
    pub delivery_timeout: Duration,
    /// `None`: no per-host limit.
    pub host_rate_limit: Option<NonZeroU32>,
    /// `None`: no limit on requests without a valid key.
    pub public_rate_limit: Option<NonZeroU32>,
    /// 0: never auto-disable.
    pub auto_disable_after: u32,
    pub retention: Duration,
    pub max_in_flight: NonZeroU32,
    /// How long a replaced secret keeps signing beside the new one.
    pub secret_overlap: Duration,
    /// The operations channel: where operational events go, and their signing secret.
    pub ops_webhook: Option<(WebhookUrl, Option<Secret>)>,
    pub log_format: LogFormat,
    /// `HOOKD_PUBLIC_URL`: where patients reach the server (no trailing slash); invitation
    /// links are `{base}/r/{token}`. `None`: the address the server is bound to.
    pub public_url: Option<String>,
    /// The listener's certificate and key: HTTPS when set.
    pub tls: Option<TlsFiles>,
    /// `HOOKD_METRICS_KEY`: required by /metrics when set.
    pub metrics_key: Option<String>,
    /// `HOOKD_CA_FILE`: trusted by outgoing connections beside the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// `HOOKD_CLIENT_CERT`/`HOOKD_CLIENT_KEY`: presented by outgoing connections.
    pub client_identity: Option<TlsFiles>,
    /// How long a client may take to send a request's headers, and then its body.
    pub request_read_timeout: Duration,
    /// How long a request may take from its headers to its answer.
    pub handler_timeout: Duration,
    /// The mail server, the SMS gateway and their pace (SPEC §10).
    pub messaging: Messaging,
}

/// The PEM files of a certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that cannot be used, named as the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

fn bad(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        message: message.into(),
    }
}

impl ServeArgs {
    /// Fills what the command line left out from the `--config` file, if any.
    pub fn with_file(self) -> Result<Self, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad("--config", format!("{}: {e}", path.display())))?;
        let file: ServeArgs = toml::from_str(&text).map_err(|e| bad("--config", e.to_string()))?;
        Ok(Self {
            config: self.config,
            listen: self.listen.or(file.listen),
            data_dir: self.data_dir.or(file.data_dir),
            api_key: self.api_key.or(file.api_key),
            allow_http: self.allow_http.or(file.allow_http),
            allow_networks: self.allow_networks.or(file.allow_networks),
            allow_hosts: self.allow_hosts.or(file.allow_hosts),
            delivery_timeout_ms: self.delivery_timeout_ms.or(file.delivery_timeout_ms),
            host_rate_limit: self.host_rate_limit.or(file.host_rate_limit),
            public_rate_limit: self.public_rate_limit.or(file.public_rate_limit),
            auto_disable_after: self.auto_disable_after.or(file.auto_disable_after),
            retention_days: self.retention_days.or(file.retention_days),
            max_in_flight: self.max_in_flight.or(file.max_in_flight),
            secret_overlap_seconds: self.secret_overlap_seconds.or(file.secret_overlap_seconds),
            ops_webhook_url: self.ops_webhook_url.or(file.ops_webhook_url),
            ops_webhook_secret: self.ops_webhook_secret.or(file.ops_webhook_secret),
            log_format: self.log_format.or(file.log_format),
            public_url: self.public_url.or(file.public_url),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            metrics_key: self.metrics_key.or(file.metrics_key),
            ca_file: self.ca_file.or(file.ca_file),
            client_cert: self.client_cert.or(file.client_cert),
            client_key: self.client_key.or(file.client_key),
            request_read_timeout_ms: self
                .request_read_timeout_ms
                .or(file.request_read_timeout_ms),
            handler_timeout_ms: self.handler_timeout_ms.or(file.handler_timeout_ms),
            smtp_url: self.smtp_url.or(file.smtp_url),
            smtp_from: self.smtp_from.or(file.smtp_from),
            sms_url: self.sms_url.or(file.sms_url),
            sms_token: self.sms_token.or(file.sms_token),
            message_rate_limit: self.message_rate_limit.or(file.message_rate_limit),
            admin_email: self.admin_email.or(file.admin_email),
        })
    }

    /// Validates every setting into [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let args = self.with_file()?;
        let listen = args.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = listen
            .parse()
            .map_err(|_| bad("HOOKD_LISTEN", format!("`{listen}` is not an address:port")))?;
        let allow_networks = split_list(args.allow_networks.as_deref())
            .map(|cidr| {
                cidr.parse()
                    .map_err(|_| bad("HOOKD_ALLOW_NETWORKS", format!("`{cidr}` is not a CIDR")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allow_hosts = split_list(args.allow_hosts.as_deref())
            .map(|host| {
                HostRule::parse(host)
                    .ok_or_else(|| bad("HOOKD_ALLOW_HOSTS", format!("`{host}` is not a host name")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout_ms = args.delivery_timeout_ms.unwrap_or(10_000);
        if !(100..=300_000).contains(&timeout_ms) {
            return Err(bad("HOOKD_DELIVERY_TIMEOUT_MS", "must be 100 to 300000"));
        }
        let retention_days = args.retention_days.unwrap_or(30);
        if retention_days == 0 {
            return Err(bad("HOOKD_RETENTION_DAYS", "must be at least 1"));
        }
        let max_in_flight = NonZeroU32::new(args.max_in_flight.unwrap_or(16))
            .filter(|n| n.get() <= 1024)
            .ok_or_else(|| bad("HOOKD_MAX_IN_FLIGHT", "must be 1 to 1024"))?;
        let secret_overlap_seconds = args.secret_overlap_seconds.unwrap_or(86_400);
        if secret_overlap_seconds > 604_800 {
            return Err(bad("HOOKD_SECRET_OVERLAP_SECONDS", "must be 0 to 604800"));
        }
        let log_format = match args.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "HOOKD_LOG_FORMAT",
                    format!("`{other}` is not text or json"),
                ));
            }
        };
        let public_url = args
            .public_url
            .as_deref()
            .map(parse_public_url)
            .transpose()?;
        let metrics_key = args.metrics_key.filter(|k| !k.is_empty());
        if metrics_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(bad("HOOKD_METRICS_KEY", "must be at least 16 characters"));
        }
        if args.api_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(bad("HOOKD_API_KEY", "must be at least 16 characters"));
        }
        let network = NetworkPolicy {
            allow_http: args.allow_http.unwrap_or(false),
            allow_networks,
            allow_hosts,
        };
        let ops_secret = args
            .ops_webhook_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Secret::parse(s).map_err(|e| bad("HOOKD_OPS_WEBHOOK_SECRET", e)))
            .transpose()?;
        let ops_webhook = match args.ops_webhook_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => {
                let url = WebhookUrl::parse(url, &network)
                    .map_err(|e| bad("HOOKD_OPS_WEBHOOK_URL", e))?;
                Some((url, ops_secret))
            }
            None if ops_secret.is_some() => {
                return Err(bad(
                    "HOOKD_OPS_WEBHOOK_SECRET",
                    "is set without HOOKD_OPS_WEBHOOK_URL",
                ));
            }
            None => None,
        };
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(bad("HOOKD_TLS_KEY", "is needed with HOOKD_TLS_CERT")),
            (None, Some(_)) => return Err(bad("HOOKD_TLS_CERT", "is needed with HOOKD_TLS_KEY")),
        };
        let client_identity = match (args.client_cert, args.client_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad("HOOKD_CLIENT_KEY", "is needed with HOOKD_CLIENT_CERT"));
            }
            (None, Some(_)) => {
                return Err(bad("HOOKD_CLIENT_CERT", "is needed with HOOKD_CLIENT_KEY"));
            }
        };
        let request_read_timeout_ms = args.request_read_timeout_ms.unwrap_or(30_000);
        if !(100..=600_000).contains(&request_read_timeout_ms) {
            return Err(bad(
                "HOOKD_REQUEST_READ_TIMEOUT_MS",
                "must be 100 to 600000",
            ));
        }
        let handler_timeout_ms = args.handler_timeout_ms.unwrap_or(60_000);
        if !(100..=600_000).contains(&handler_timeout_ms) {
            return Err(bad("HOOKD_HANDLER_TIMEOUT_MS", "must be 100 to 600000"));
        }
        let messaging = messaging::parse(
            messaging::Raw {
                smtp_url: args.smtp_url.as_deref(),
                smtp_from: args.smtp_from.as_deref(),
                sms_url: args.sms_url.as_deref(),
                sms_token: args.sms_token.as_deref(),
                rate_limit: args.message_rate_limit,
                admin_email: args.admin_email.as_deref(),
            },
            &network,
        )?;
        Ok(Config {
            listen,
            data_dir: args
                .data_dir
                .unwrap_or_else(|| Path::new("hookd-data").to_owned()),
            api_key: args.api_key.filter(|k| !k.is_empty()),
            network,
            delivery_timeout: Duration::from_millis(timeout_ms),
            host_rate_limit: NonZeroU32::new(args.host_rate_limit.unwrap_or(100)),
            public_rate_limit: NonZeroU32::new(args.public_rate_limit.unwrap_or(20)),
            auto_disable_after: args.auto_disable_after.unwrap_or(10),
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            max_in_flight,
            secret_overlap: Duration::from_secs(secret_overlap_seconds),
            ops_webhook,
            log_format,
            public_url,
            tls,
            metrics_key,
            ca_file: args.ca_file,
            client_identity,
            request_read_timeout: Duration::from_millis(request_read_timeout_ms),
            handler_timeout: Duration::from_millis(handler_timeout_ms),
            messaging,
        })
    }
}

/// An absolute http(s) URL, perhaps with a path prefix, without query or fragment; kept
/// without its trailing slash so that paths can be appended.
fn parse_public_url(text: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| bad("HOOKD_PUBLIC_URL", format!("`{text}` {why}"));
    let url = url::Url::parse(text.trim()).map_err(|_| invalid("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid("must not have a query, fragment or user name"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl Config {
    /// [`Config::secret_overlap`] in the store's unit.
    pub fn secret_overlap_ms(&self) -> crate::domain::time::Millis {
        self.secret_overlap.as_millis() as crate::domain::time::Millis
    }

    /// The base of invitation links for a server bound to `bound` (which differs from
    /// `listen` when its port is 0).
    pub fn public_base(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{bound}"))
    }
}

fn split_list(text: Option<&str>) -> impl Iterator<Item = &str> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = ServeArgs::default().into_config().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, Path::new("hookd-data"));
        assert_eq!(config.delivery_timeout, Duration::from_secs(10));
        assert_eq!(config.host_rate_limit.map(NonZeroU32::get), Some(100));
        assert_eq!(config.public_rate_limit.map(NonZeroU32::get), Some(20));
        assert_eq!(config.auto_disable_after, 10);
        assert_eq!(config.retention, Duration::from_secs(30 * 86_400));
        assert!(!config.network.allow_http);
        assert_eq!(config.public_url, None);
        assert_eq!(config.secret_overlap, Duration::from_secs(86_400));
        assert_eq!(config.public_base(config.listen), "http://127.0.0.1:8080");
        // SPEC §9: headers and body within 30 s, any request answered within 60 s.
        assert_eq!(config.request_read_timeout, Duration::from_secs(30));
        assert_eq!(config.handler_timeout, Duration::from_secs(60));
        assert_eq!(
            (config.tls, config.metrics_key, config.ca_file),
            (None, None, None)
        );
        assert!(config.client_identity.is_none());
    }

    #[test]
    fn the_public_url_keeps_its_path_prefix_without_the_trailing_slash() {
        let args = ServeArgs {
            public_url: Some("https://clinic.example/surveys/".into()),
            ..ServeArgs::default()
        };
        let config = args.into_config().unwrap();
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://clinic.example/surveys")
        );
        for wrong in [
            "clinic.example",
            "ftp://clinic.example",
            "https://x.example/?a=1",
        ] {
            let args = ServeArgs {
                public_url: Some(wrong.into()),
                ..ServeArgs::default()
            };
            assert_eq!(args.into_config().unwrap_err().setting, "HOOKD_PUBLIC_URL");
        }
    }

    #[test]
    fn a_bad_setting_is_named_in_the_error() {
        let args = ServeArgs {
            allow_networks: Some("10.0.0.0/8, nonsense".into()),
            ..ServeArgs::default()
        };
        let error = args.into_config().unwrap_err();
        assert_eq!(error.setting, "HOOKD_ALLOW_NETWORKS");
        assert!(error.to_string().contains("nonsense"));
    }

    #[test]
    fn the_file_fills_only_what_flags_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nhost_rate_limit = 0\nallow_http = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:7000".into()),
            ..ServeArgs::default()
        };
        let config = args.into_config().unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.host_rate_limit, None);
        assert!(config.network.allow_http);
    }
}
