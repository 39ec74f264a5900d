//! Engine tests that need its internals: an actor that fails is restarted by the supervisor
//! and its webhook's deliveries still go out.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::DeliveryContext;
use super::client::Sender;
use super::engine::Engine;
use crate::domain::ssrf::NetworkPolicy;
use crate::domain::survey::Question;
use crate::domain::time::now_ms;
use crate::domain::{CustomHeaders, EventId, EventType, RetryPolicy, SurveyId, WebhookUrl};
use crate::store::deliveries::{NewEvent, enqueue_event};
use crate::store::webhooks::{self, NewWebhook};
use crate::store::{Store, surveys};
use crate::telemetry::Telemetry;

async fn counting_receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "ok" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, count)
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_panicking_delivery_actor_is_restarted_and_its_deliveries_still_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (url, received) = counting_receiver().await;
    let telemetry = Telemetry::new();
    let policy = NetworkPolicy {
        allow_http: true,
        allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
        allow_hosts: vec![],
    };
    let ctx = DeliveryContext {
        store: store.clone(),
        sender: Sender::new(policy.clone(), Duration::from_secs(2), None).unwrap(),
        telemetry: telemetry.clone(),
        auto_disable_after: 10,
        max_in_flight: NonZeroU32::new(4).unwrap(),
        delivery_timeout: Duration::from_secs(2),
        network: policy.clone(),
    };
    let (engine, _task) = Engine::start(ctx).await.unwrap();
    let questions: Vec<Question> =
        serde_json::from_value(serde_json::json!([{"id": "q", "type": "text", "text": "Q"}]))
            .unwrap();
    let survey = store
        .write(move |c| surveys::insert(c, "S", &questions, now_ms()))
        .await
        .unwrap();
    let new = NewWebhook {
        survey_id: survey.id,
        name: "HIS".into(),
        url: WebhookUrl::parse(&url, &policy).unwrap(),
        events: vec![EventType::ResponseCompleted],
        secret: None,
        headers: CustomHeaders::default(),
        is_active: true,
        retry_policy: RetryPolicy::default(),
        ordering: Default::default(),
    };
    let webhook = store
        .write(move |c| webhooks::insert(c, &new))
        .await
        .unwrap();
    engine.sync(webhook.id).await;
    let emit = |survey_id: SurveyId| {
        let store = store.clone();
        let engine = engine.clone();
        async move {
            let event = NewEvent {
                id: EventId::new(),
                survey_id,
                event_type: EventType::ResponseCompleted,
                payload: "{}".into(),
                created_at: now_ms(),
            };
            let woken = store
                .write(move |c| enqueue_event(c, &event))
                .await
                .unwrap();
            engine.wake(woken);
        }
    };
    emit(survey.id).await;
    wait_for("the first delivery", || {
        received.load(Ordering::SeqCst) == 1
    })
    .await;

    engine.panic_actor(webhook.id);
    wait_for("the supervisor to restart the actor", || {
        telemetry.render().contains("hookd_actor_restarts_total 1")
    })
    .await;
    assert_eq!(engine.actor_count().await, 1);
    for _ in 0..3 {
        emit(survey.id).await;
    }
    wait_for("deliveries after the panic", || {
        received.load(Ordering::SeqCst) == 4
    })
    .await;
}
