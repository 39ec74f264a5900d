//! Sending one email (SPEC §10) through lettre's pooled SMTP client: the email queue's
//! counterpart of [`super::client::Sender`].
//!
//! A job's stored body is the filled-in message (`{to, subject, text, html}`); the email
//! is built from it at send time, `multipart/alternative`, from `HOOKD_SMTP_FROM`, with a
//! `Message-ID` made of the job's id — the same on every attempt, so a retry after a lost
//! answer is recognisably the same email. The server's reply decides the outcome: 2xx is
//! sent, 4xx is tried again later, 5xx is a permanent rejection (the reply is kept as the
//! attempt's error).

use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::client::{AttemptReport, Route, RouteWatch};
use crate::config::messaging::{MailSettings, SmtpSecurity};
use crate::domain::DeliveryId;

/// The stored body of an email job.
#[derive(Deserialize)]
struct StoredEmail {
    to: Vec<String>,
    subject: Option<String>,
    text: String,
    html: Option<String>,
}

/// The mail server's client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of every `Message-ID`: the sender's domain.
    id_domain: String,
}

impl Mailer {
    /// A client of the configured server, trusting `HOOKD_CA_FILE` beside the built-in
    /// roots (`extra_roots`, DER), with at most `connections` open at once. Nothing is
    /// connected until the first email.
    pub fn new(
        settings: &MailSettings,
        extra_roots: &[Vec<u8>],
        timeout: Duration,
        connections: u32,
    ) -> anyhow::Result<Self> {
        let server = &settings.server;
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut builder = TlsParameters::builder(server.host.clone());
            for der in extra_roots {
                builder = builder.add_root_certificate(
                    Certificate::from_der(der.clone())
                        .map_err(|e| anyhow::anyhow!("HOOKD_CA_FILE: {e}"))?,
                );
            }
            builder
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("HOOKD_SMTP_URL: cannot set up TLS: {e}"))
        };
        let security = match server.security {
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::Implicit => Tls::Wrapper(tls()?),
            SmtpSecurity::None => Tls::None,
        };
        let id_domain = settings.from.email.domain().to_owned();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(security)
            .hello_name(ClientId::Domain(id_domain.clone()))
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(connections));
        if let Some((user, password)) = &server.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
            id_domain,
        })
    }

    /// Sends one email job and reports what the server said; `None` when the queue was
    /// withdrawn before anything was sent.
    pub async fn attempt(
        &self,
        route: &RouteWatch,
        id: DeliveryId,
        body: &str,
    ) -> Option<AttemptReport> {
        if matches!(**route.borrow(), Route::Withdrawn) {
            return None;
        }
        let started = Instant::now();
        let mut report = AttemptReport::starting(id);
        match self.build(id, body) {
            Err(message) => {
                // Nothing a retry could change: the stored email cannot be sent.
                report.error = Some(format!("refused: {message}"));
                report.permanent = true;
            }
            Ok(email) => match self.transport.send(email).await {
                Ok(response) => {
                    report.status_code = Some(u16::from(response.code()));
                    report.response_body = Some(response.message().collect::<Vec<_>>().join(" "));
                }
                Err(error) => {
                    report.status_code = error.status().map(u16::from);
                    report.permanent = error.is_permanent();
                    report.error = Some(describe(&error));
                }
            },
        }
        report.duration = started.elapsed();
        Some(report)
    }

    fn build(&self, id: DeliveryId, body: &str) -> Result<Message, String> {
        let stored: StoredEmail = serde_json::from_str(body)
            .map_err(|e| format!("the stored email is unreadable: {e}"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(format!("<{id}@{}>", self.id_domain)))
            .subject(stored.subject.unwrap_or_default());
        for to in &stored.to {
            // The address itself stays out of the error: it is a patient's.
            let mailbox: Mailbox = to
                .parse()
                .map_err(|_| "a recipient is not a valid email address".to_owned())?;
            builder = builder.to(mailbox);
        }
        let parts = match stored.html {
            Some(html) => MultiPart::alternative_plain_html(stored.text, html),
            None => MultiPart::alternative().singlepart(SinglePart::plain(stored.text)),
        };
        builder
            .multipart(parts)
            .map_err(|e| format!("the email cannot be built: {e}"))
    }
}

/// What went wrong, in the server's words when it answered (`550 5.1.1 ...`).
fn describe(error: &lettre::transport::smtp::Error) -> String {
    if let Some(tls) = crate::client_tls::describe_failure(error) {
        return tls;
    }
    let mut text = error.to_string();
    if error.is_timeout() {
        text = format!("timed out: {text}");
    }
    text
}
