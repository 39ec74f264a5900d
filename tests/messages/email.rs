//! Email (SPEC §10): what the mail server receives, its refusals, and TLS to it.

use reqwest::StatusCode;
use serde_json::json;

use super::{app_with_channels, contact, distribute, message_reaches, smtp, status_of};
use crate::common::tls::{Leaf, clinic_ca, server_pair};
use crate::common::{SmtpServer, SmtpTls, spawn_app_with, test_args};

#[tokio::test]
async fn an_email_invitation_is_multipart_from_the_clinic_and_its_link_opens_the_patient_page() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey_of_every_type("After your visit").await;
    let ada = contact(
        &app,
        json!({"email": "ada@example.org", "firstName": "Ada <3", "lastName": "O'Brien & Co"}),
    )
    .await;
    let message = json!({
        "subject": "{{surveyTitle}} for {{firstName}}",
        "text": "Hi {{firstName}} {{lastName}}: {{link}} (until {{expiresAt}})",
        "html": "<p>Hi {{firstName}} {{lastName}}</p><a href=\"{{link}}\">Answer</a>"
    });
    let sent = distribute(&app, &survey, &[&ada], "email", json!({"message": message})).await;
    assert_eq!(sent["channel"], "email");
    assert_eq!(sent["invitations"][0]["messageStatus"], "queued");
    let link = sent["invitations"][0]["url"].as_str().unwrap().to_owned();

    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt_tos, ["ada@example.org"]);
    assert_eq!(mail.mail_from, "surveys@clinic.example");
    let from = mail.header("From").unwrap();
    assert!(
        from.contains("Clinic Surveys") && from.contains("<surveys@clinic.example>"),
        "{from}"
    );
    assert_eq!(
        mail.header("Subject").unwrap(),
        "After your visit for Ada <3"
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let parts = mail.parts();
    let kinds: Vec<&str> = parts.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["text/plain", "text/html"]);
    assert!(
        parts[0]
            .1
            .starts_with(&format!("Hi Ada <3 O'Brien & Co: {link} (until ")),
        "text is not escaped: {}",
        parts[0].1
    );
    assert_eq!(
        parts[1].1.trim_end(),
        format!("<p>Hi Ada &lt;3 O&#39;Brien &amp; Co</p><a href=\"{link}\">Answer</a>"),
        "values are escaped in html"
    );

    let status = message_reaches(&app, &survey, &sent, 0, 0, "sent").await;
    assert_eq!(status["kind"], "invitation");
    assert_eq!(status["attempts"], 1);
    assert!(status["sentAt"].is_string());
    let id = status["id"].as_str().unwrap();
    assert_eq!(
        mail.header("Message-ID").unwrap(),
        format!("<{id}@clinic.example>"),
        "the Message-ID names the message, the same on every attempt"
    );

    // The link in the mail is the patient's page.
    let page = app
        .client
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("After your visit"));

    let (_, bulk) = app
        .get(&format!(
            "/api/surveys/{survey}/responses/bulk-status?contactIds={ada}"
        ))
        .await;
    assert_eq!(bulk["items"][0]["messageStatus"], "sent");
}

#[tokio::test]
async fn the_default_email_has_text_and_html_and_greets_by_first_name() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey_of_every_type("Your stay").await;
    let grace = contact(
        &app,
        json!({"email": "grace@example.org", "firstName": "Grace"}),
    )
    .await;
    let anon = contact(&app, json!({"email": "anon@example.org"})).await;
    distribute(&app, &survey, &[&grace, &anon], "email", json!({})).await;
    let mut mails = smtp.wait_for(2).await;
    mails.sort_by_key(|m| m.rcpt_tos[0].clone());
    let (anon_mail, grace_mail) = (&mails[0], &mails[1]);
    assert_eq!(
        grace_mail.header("Subject").unwrap(),
        "Your survey: Your stay"
    );
    let parts = grace_mail.parts();
    assert!(parts[0].1.starts_with("Hello Grace,\n"), "{}", parts[0].1);
    assert!(parts[1].1.contains("<p>Hello Grace,</p>"), "{}", parts[1].1);
    assert!(
        anon_mail.parts()[0].1.starts_with("Hello,\n"),
        "no first name: no stray space"
    );
}

#[tokio::test]
async fn a_permanent_rejection_fails_at_once_with_the_servers_reply_and_a_temporary_one_is_retried()
{
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let rejected = contact(&app, json!({"email": "reject-me@example.org"})).await;
    let busy = contact(&app, json!({"email": "busy-now@example.org"})).await;
    let sent = distribute(&app, &survey, &[&rejected, &busy], "email", json!({})).await;

    let failed = message_reaches(&app, &survey, &sent, 0, 0, "failed").await;
    assert_eq!(failed["attempts"], 1, "a 5xx is not retried");
    let error = failed["lastError"].as_str().unwrap();
    assert!(
        error.contains("550") && error.contains("mailbox unavailable"),
        "{error}"
    );

    // 451 twice, then accepted: retried on the message schedule (1 s, then 5 s).
    let delivered = message_reaches(&app, &survey, &sent, 1, 0, "sent").await;
    assert_eq!(delivered["attempts"], 3);
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, ["busy-now@example.org"]);
}

async fn sends_over_tls(tls: SmtpTls) {
    let smtp = SmtpServer::start(tls);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("clinic-ca.pem");
    std::fs::write(&ca, &clinic_ca().cert_pem).unwrap();
    let mut args = test_args(dir.path());
    args.smtp_url = Some(smtp.url());
    args.smtp_from = Some("surveys@clinic.example".into());
    args.ca_file = Some(ca);
    args.message_rate_limit = Some(0);
    let app = spawn_app_with(args, Some(dir)).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"email": "ada@example.org"})).await;
    let sent = distribute(&app, &survey, &[&ada], "email", json!({})).await;
    message_reaches(&app, &survey, &sent, 0, 0, "sent").await;
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn starttls_to_a_server_of_the_clinics_own_ca_is_trusted_through_hookd_ca_file() {
    let pair = server_pair();
    sends_over_tls(SmtpTls::StartTls {
        cert_pem: pair.cert_pem.clone(),
        key_pem: pair.key_pem.clone(),
    })
    .await;
}

#[tokio::test]
async fn smtps_to_a_server_of_the_clinics_own_ca_is_trusted_through_hookd_ca_file() {
    let pair = server_pair();
    sends_over_tls(SmtpTls::Implicit {
        cert_pem: pair.cert_pem.clone(),
        key_pem: pair.key_pem.clone(),
    })
    .await;
}

#[tokio::test]
async fn a_mail_server_of_an_unknown_ca_is_refused_and_the_message_waits() {
    let pair = clinic_ca().issue(Leaf::Server);
    let smtp = SmtpServer::start(SmtpTls::StartTls {
        cert_pem: pair.cert_pem,
        key_pem: pair.key_pem,
    });
    let app = app_with_channels(Some(&smtp), None).await; // no HOOKD_CA_FILE
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"email": "ada@example.org"})).await;
    let sent = distribute(&app, &survey, &[&ada], "email", json!({})).await;
    let mut last = json!(null);
    for _ in 0..1500 {
        last = status_of(&app, &survey, &sent).await["invitations"][0]["messages"][0].clone();
        if last["attempts"].as_u64().unwrap_or(0) >= 1 && last["lastError"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(last["status"], "queued", "a TLS failure is retried: {last}");
    let error = last["lastError"].as_str().unwrap();
    assert!(
        error.to_lowercase().contains("certificate") || error.contains("issuer"),
        "{error}"
    );
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn the_user_and_password_of_hookd_smtp_url_log_in_after_starttls_and_a_wrong_one_fails_at_once()
 {
    let pair = server_pair();
    let tls = || SmtpTls::StartTls {
        cert_pem: pair.cert_pem.clone(),
        key_pem: pair.key_pem.clone(),
    };
    let smtp = SmtpServer::start_with(tls(), &["--auth", "clinic:s3cret pass"]);
    for (password, outcome) in [("s3cret%20pass", "sent"), ("wrong", "failed")] {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("clinic-ca.pem");
        std::fs::write(&ca, &clinic_ca().cert_pem).unwrap();
        let mut args = test_args(dir.path());
        args.smtp_url = Some(
            smtp.url()
                .replace("smtp://", &format!("smtp://clinic:{password}@")),
        );
        args.smtp_from = Some("surveys@clinic.example".into());
        args.ca_file = Some(ca);
        args.message_rate_limit = Some(0);
        let app = spawn_app_with(args, Some(dir)).await;
        let survey = app.create_survey().await;
        let ada = contact(&app, json!({"email": "ada@example.org"})).await;
        let sent = distribute(&app, &survey, &[&ada], "email", json!({})).await;
        let message = message_reaches(&app, &survey, &sent, 0, 0, outcome).await;
        if outcome == "failed" {
            let error = message["lastError"].as_str().unwrap();
            assert!(error.contains("535"), "the server's refusal: {error}");
            assert_eq!(message["attempts"], 1, "a 5xx is not retried");
        }
    }
    assert_eq!(
        smtp.received().len(),
        1,
        "only the right password sent mail"
    );
}
