//! Admin notices (SPEC §10): a disabled webhook is told by email to `HOOKD_ADMIN_EMAIL`,
//! with no patient data in it.

use serde_json::json;

use super::smtp;
use crate::common::{Receiver, Reply, spawn_app_with, test_args, wait_until};

#[tokio::test]
async fn a_disabled_webhook_is_told_to_the_admins_by_email_without_patient_data() {
    let smtp = smtp();
    let his = Receiver::scripted(|_, _| Reply::status(410)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.smtp_url = Some(smtp.url());
    args.smtp_from = Some("hookd@clinic.example".into());
    args.admin_email = Some("ops@clinic.example, it@clinic.example".into());
    args.message_rate_limit = Some(0);
    let app = spawn_app_with(args, Some(dir)).await;
    let (survey, webhook) = app
        .survey_with_webhook(&his, json!({"name": "Ward HIS"}))
        .await;
    let (status, body) = app
        .post(
            &format!("/api/surveys/{survey}/responses"),
            json!({"answers": {"stars": {"value": 2}, "note": {"value": "NOTE-OF-A-PATIENT"}}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response_id = body["id"].as_str().unwrap().to_owned();

    let mail = smtp.wait_for(1).await.remove(0);
    let mut to = mail.rcpt_tos.clone();
    to.sort();
    assert_eq!(to, ["it@clinic.example", "ops@clinic.example"]);
    assert_eq!(
        mail.header("Subject").unwrap(),
        "hookd: webhook \"Ward HIS\" disabled"
    );
    let text = &mail.parts()[0].1;
    assert!(
        text.contains(&webhook) && text.contains(&his.url("/hook")),
        "{text}"
    );
    assert!(text.contains("410"), "the reason: {text}");
    assert!(
        !mail.data.contains("NOTE-OF-A-PATIENT") && !mail.data.contains(&response_id),
        "no patient data in a notice"
    );
    let (_, hook) = app
        .get(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
        .await;
    assert_eq!(hook["isActive"], false);

    // Re-enabling sends no email (the operations webhook is told; the admins are not).
    his.set_script(|_, _| Reply::ok());
    let (status, _) = app
        .patch(
            &format!("/api/surveys/{survey}/webhooks/{webhook}"),
            json!({"isActive": true}),
        )
        .await;
    assert_eq!(status, 200);
    wait_until(
        "the paused delivery is tried again",
        std::time::Duration::from_secs(10),
        || async { his.count() >= 2 },
    )
    .await;
    let api = &app.api;
    wait_until(
        "the notice is recorded sent",
        std::time::Duration::from_secs(10),
        || async move {
            api.get("/api/admin/queue").await.1["messages"]["email"]
                == json!({"queued": 0, "sent": 1, "failed": 0})
        },
    )
    .await;
    let (_, queue) = app.get("/api/admin/queue").await;
    assert!(
        queue["messages"]["sms"].is_null(),
        "no gateway, no sms line"
    );
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn messages_queued_sent_and_failed_show_in_the_queue_summary_metrics_and_hookd_status() {
    let smtp = smtp();
    let app = super::app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let ok = super::contact(&app, json!({"email": "ok@example.org"})).await;
    let rejected = super::contact(&app, json!({"email": "reject@example.org"})).await;
    let sent = super::distribute(
        &app,
        &survey,
        &[&ok, &rejected],
        "email",
        json!({"reminders": [3600]}),
    )
    .await;
    super::message_reaches(&app, &survey, &sent, 1, 0, "failed").await;
    super::message_reaches(&app, &survey, &sent, 0, 0, "sent").await;

    let (_, queue) = app.get("/api/admin/queue").await;
    assert_eq!(
        queue["messages"]["email"],
        json!({"queued": 2, "sent": 1, "failed": 1}),
        "the two reminders wait: {queue}"
    );
    let metrics = app.metrics().await;
    for line in [
        "hookd_messages{channel=\"email\",status=\"queued\"} 2",
        "hookd_messages{channel=\"email\",status=\"sent\"} 1",
        "hookd_messages{channel=\"email\",status=\"failed\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    let status = crate::common::run_cli(&app.data_dir, &["status"]).await;
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains("messages by email: 2 queued, 1 sent, 1 failed"),
        "{text}"
    );
    assert!(
        !text.contains("messages by sms"),
        "no gateway, no line: {text}"
    );
}
