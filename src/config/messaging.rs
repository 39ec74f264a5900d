//! The settings of the message channels (SPEC §10): the mail server, the SMS gateway,
//! their pace and the admins told of disabled webhooks — validated at start into these
//! types, with the setting named when one cannot be used.

use std::fmt;
use std::num::NonZeroU32;

use super::{ConfigError, bad};
use crate::domain::WebhookUrl;
use crate::domain::email::is_address;
use crate::domain::ssrf::NetworkPolicy;

/// A credential from the configuration: kept in memory, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(String);

impl Hidden {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hidden(..)")
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
    /// `smtp://...?tls=none`: no TLS at all, only with `HOOKD_ALLOW_HTTP`.
    None,
}

/// `HOOKD_SMTP_URL`, parsed.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// User and password from the URL's userinfo, percent-decoded.
    pub credentials: Option<(String, Hidden)>,
}

impl SmtpServer {
    /// The server as operators may see it: no credentials.
    pub fn describe(&self) -> String {
        let scheme = match self.security {
            SmtpSecurity::Implicit => "smtps",
            SmtpSecurity::StartTls | SmtpSecurity::None => "smtp",
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// Email: the server, the sender, and the admins told of disabled webhooks.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub server: SmtpServer,
    /// `HOOKD_SMTP_FROM`, a mailbox (`Clinic <survey@clinic.example>` or a bare address).
    pub from: lettre::message::Mailbox,
    /// `HOOKD_ADMIN_EMAIL`.
    pub admins: Vec<String>,
}

/// The SMS gateway.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    pub url: WebhookUrl,
    /// `HOOKD_SMS_TOKEN`, sent as `Authorization: Bearer`.
    pub token: Option<Hidden>,
}

/// Everything the message channels need; a channel left unset refuses its distributions.
#[derive(Debug, Clone, Default)]
pub struct Messaging {
    pub mail: Option<MailSettings>,
    pub sms: Option<SmsSettings>,
    /// Messages per second to each channel; `None`: unlimited.
    pub rate_limit: Option<NonZeroU32>,
}

/// The raw settings, as [`super::ServeArgs`] holds them.
pub struct Raw<'a> {
    pub smtp_url: Option<&'a str>,
    pub smtp_from: Option<&'a str>,
    pub sms_url: Option<&'a str>,
    pub sms_token: Option<&'a str>,
    pub rate_limit: Option<u32>,
    pub admin_email: Option<&'a str>,
}

/// Validates the message settings against the network policy.
pub fn parse(raw: Raw<'_>, network: &NetworkPolicy) -> Result<Messaging, ConfigError> {
    let non_empty = |value: Option<&str>| {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let admins: Vec<String> = non_empty(raw.admin_email)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for address in &admins {
        if !is_address(address) {
            return Err(bad(
                "HOOKD_ADMIN_EMAIL",
                format!("`{address}` is not an email address"),
            ));
        }
    }
    let mail = match non_empty(raw.smtp_url) {
        Some(url) => {
            let server = parse_smtp_url(&url, network)?;
            let from = non_empty(raw.smtp_from)
                .ok_or_else(|| bad("HOOKD_SMTP_FROM", "is needed with HOOKD_SMTP_URL"))?;
            let from = from.parse().map_err(|_| {
                bad(
                    "HOOKD_SMTP_FROM",
                    format!("`{from}` is not a mailbox (name <address> or address)"),
                )
            })?;
            Some(MailSettings {
                server,
                from,
                admins,
            })
        }
        None if non_empty(raw.smtp_from).is_some() => {
            return Err(bad("HOOKD_SMTP_FROM", "is set without HOOKD_SMTP_URL"));
        }
        None if !admins.is_empty() => {
            return Err(bad(
                "HOOKD_ADMIN_EMAIL",
                "needs HOOKD_SMTP_URL to send with",
            ));
        }
        None => None,
    };
    let token = non_empty(raw.sms_token).map(Hidden);
    let sms = match non_empty(raw.sms_url) {
        Some(url) => Some(SmsSettings {
            url: WebhookUrl::parse(&url, network).map_err(|e| bad("HOOKD_SMS_URL", e))?,
            token,
        }),
        None if token.is_some() => {
            return Err(bad("HOOKD_SMS_TOKEN", "is set without HOOKD_SMS_URL"));
        }
        None => None,
    };
    Ok(Messaging {
        mail,
        sms,
        rate_limit: NonZeroU32::new(raw.rate_limit.unwrap_or(10)),
    })
}

/// `smtp://[user:pass@]host[:port][?tls=none]` or `smtps://...`. The mail server is the
/// clinic's own, usually on its network, so the SSRF rule does not apply to it; a plain
/// connection needs `HOOKD_ALLOW_HTTP`, as plain HTTP does.
fn parse_smtp_url(text: &str, network: &NetworkPolicy) -> Result<SmtpServer, ConfigError> {
    let invalid = |why: String| bad("HOOKD_SMTP_URL", why);
    let url = url::Url::parse(text).map_err(|e| invalid(format!("is not a URL ({e})")))?;
    let mut security = match url.scheme() {
        "smtp" => SmtpSecurity::StartTls,
        "smtps" => SmtpSecurity::Implicit,
        other => return Err(invalid(format!("scheme `{other}` is not smtp or smtps"))),
    };
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("tls", "none") if security == SmtpSecurity::StartTls => security = SmtpSecurity::None,
            ("tls", "required") if security == SmtpSecurity::StartTls => {}
            _ => {
                return Err(invalid(format!(
                    "`{key}={value}` is not understood (only tls=none on smtp://)"
                )));
            }
        }
    }
    if security == SmtpSecurity::None && !network.allow_http {
        return Err(invalid(
            "`tls=none` sends mail in clear text; it needs HOOKD_ALLOW_HTTP".into(),
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(match security {
        SmtpSecurity::Implicit => 465,
        SmtpSecurity::StartTls | SmtpSecurity::None => 587,
    });
    let decode = |part: &str| {
        percent_decode(part)
            .ok_or_else(|| invalid("has a user or password that is not UTF-8".into()))
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, password) => Some((decode(user)?, Hidden(decode(password.unwrap_or(""))?))),
    };
    Ok(SmtpServer {
        host,
        port,
        security,
        credentials,
    })
}

fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(allow_http: bool) -> NetworkPolicy {
        NetworkPolicy {
            allow_http,
            allow_networks: Vec::new(),
            allow_hosts: Vec::new(),
        }
    }

    #[test]
    fn smtp_urls_choose_starttls_implicit_tls_or_none_only_with_allow_http() {
        let starttls = parse_smtp_url("smtp://mail.clinic.example", &network(false)).unwrap();
        assert_eq!(
            (starttls.security, starttls.port),
            (SmtpSecurity::StartTls, 587)
        );
        let implicit =
            parse_smtp_url("smtps://u%40x:p%3Aw@mail.clinic.example", &network(false)).unwrap();
        assert_eq!(
            (implicit.security, implicit.port),
            (SmtpSecurity::Implicit, 465)
        );
        let (user, password) = implicit.credentials.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("u@x", "p:w"));
        assert_eq!(implicit.describe(), "smtps://mail.clinic.example:465");
        let refused =
            parse_smtp_url("smtp://127.0.0.1:2525?tls=none", &network(false)).unwrap_err();
        assert!(refused.message.contains("HOOKD_ALLOW_HTTP"), "{refused}");
        let plain = parse_smtp_url("smtp://127.0.0.1:2525?tls=none", &network(true)).unwrap();
        assert_eq!((plain.security, plain.port), (SmtpSecurity::None, 2525));
        assert!(parse_smtp_url("smtps://h?tls=none", &network(true)).is_err());
        assert!(parse_smtp_url("http://h", &network(true)).is_err());
    }
}
