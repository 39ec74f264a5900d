//! Engine tests that need its internals: an actor that fails is restarted by the supervisor
//! and its webhook's deliveries still go out, also those it had in flight.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::DeliveryContext;
use super::client::Sender;
use super::engine::Engine;
use super::window::SpareSlots;
use crate::domain::ssrf::NetworkPolicy;
use crate::domain::survey::Question;
use crate::domain::time::now_ms;
use crate::domain::{CustomHeaders, EventId, EventType, RetryPolicy, WebhookUrl};
use crate::store::deliveries::{NewEvent, enqueue_event};
use crate::store::webhooks::{self, NewWebhook, Webhook};
use crate::store::{Store, surveys};
use crate::telemetry::Telemetry;

/// A receiver that counts requests and answers each once `gate` gives it a permit.
async fn receiver(gate: Arc<Semaphore>) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let gate = gate.clone();
        async move {
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
            "ok"
        }
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

/// A store, a running engine and one webhook to `url`.
struct Scene {
    _dir: tempfile::TempDir,
    store: Store,
    engine: Engine,
    telemetry: Telemetry,
    webhook: Webhook,
    spare_slots: Arc<SpareSlots>,
}

impl Scene {
    /// A scene whose webhook may have 4 attempts in flight, with the default claim budget.
    async fn start(url: &str) -> Self {
        Self::start_with(url, SpareSlots::new(4)).await
    }

    async fn start_with(url: &str, spare_slots: Arc<SpareSlots>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Telemetry::new();
        let store = Store::open(dir.path(), &telemetry).unwrap();
        let policy = NetworkPolicy {
            allow_http: true,
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            allow_hosts: vec![],
        };
        let ctx = DeliveryContext {
            store: store.clone(),
            sender: Sender::new(
                policy.clone(),
                Duration::from_secs(5),
                None,
                &Default::default(),
            )
            .unwrap(),
            telemetry: telemetry.clone(),
            auto_disable_after: 10,
            max_in_flight: NonZeroU32::new(4).unwrap(),
            spare_slots: spare_slots.clone(),
            delivery_timeout: Duration::from_secs(5),
            network: policy.clone(),
            mailer: None,
            sms: None,
            message_rate_limit: None,
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
            url: WebhookUrl::parse(url, &policy).unwrap(),
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
        Self {
            _dir: dir,
            store,
            engine,
            telemetry,
            webhook,
            spare_slots,
        }
    }

    async fn emit(&self) {
        let event = NewEvent {
            id: EventId::new(),
            survey_id: self.webhook.survey_id,
            event_type: EventType::ResponseCompleted,
            payload: "{}".into(),
            created_at: now_ms(),
        };
        let woken = self
            .store
            .write(move |c| enqueue_event(c, &event))
            .await
            .unwrap();
        self.engine.wake(woken);
    }

    async fn restarted(&self) {
        self.engine.panic_actor(self.webhook.id);
        wait_for("the supervisor to restart the actor", || {
            self.telemetry
                .render()
                .contains("hookd_actor_restarts_total 1")
        })
        .await;
        assert_eq!(self.engine.actor_count().await, 1);
    }

    fn succeeded(&self) -> i64 {
        self.with_status("succeeded")
    }

    fn with_status(&self, status: &str) -> i64 {
        self.store
            .connection()
            .unwrap()
            .query_row(
                "SELECT count(*) FROM deliveries WHERE status = ?1",
                [status],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Jobs the store's writer has committed so far (`hookd_writer_batch_jobs_sum`).
    fn writer_jobs(&self) -> u64 {
        let metrics = self.telemetry.render();
        let sum = metrics
            .lines()
            .find_map(|line| line.strip_prefix("hookd_writer_batch_jobs_sum "))
            .expect("the writer's job histogram is rendered");
        sum.parse().unwrap()
    }
}

/// A scene whose receiver holds every request until its gate gives permits, with `events`
/// events emitted.
async fn held_scene(events: usize) -> (Arc<Semaphore>, Arc<AtomicUsize>, Scene) {
    held_scene_with(events, SpareSlots::new(4)).await
}

async fn held_scene_with(
    events: usize,
    spare_slots: Arc<SpareSlots>,
) -> (Arc<Semaphore>, Arc<AtomicUsize>, Scene) {
    let gate = Arc::new(Semaphore::new(0));
    let (url, received) = receiver(gate.clone()).await;
    let scene = Scene::start_with(&url, spare_slots).await;
    for _ in 0..events {
        scene.emit().await;
    }
    (gate, received, scene)
}

#[tokio::test]
async fn a_panicking_delivery_actor_is_restarted_and_its_deliveries_still_go_out() {
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS / 2));
    let (url, received) = receiver(gate).await;
    let scene = Scene::start(&url).await;
    scene.emit().await;
    wait_for("the first delivery", || {
        received.load(Ordering::SeqCst) == 1
    })
    .await;

    scene.restarted().await;
    for _ in 0..3 {
        scene.emit().await;
    }
    wait_for("deliveries after the panic", || {
        received.load(Ordering::SeqCst) == 4
    })
    .await;
}

#[tokio::test]
async fn claims_in_flight_when_an_actor_panics_are_sent_again_by_its_successor() {
    let (gate, received, scene) = held_scene(3).await;
    wait_for("three attempts held at the receiver", || {
        received.load(Ordering::SeqCst) == 3
    })
    .await;

    // The actor dies with three claims in flight: its attempts are aborted, its claims
    // handed back, and the new actor sends them again.
    scene.restarted().await;
    wait_for("the three deliveries sent again", || {
        received.load(Ordering::SeqCst) == 6
    })
    .await;
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    wait_for("the records", || scene.succeeded() >= 3).await;
    assert_eq!(
        received.load(Ordering::SeqCst),
        6,
        "each sent once more, no more"
    );
}

#[tokio::test]
async fn a_webhook_alone_with_a_backlog_claims_the_whole_budget_and_returns_it_after() {
    let (gate, received, scene) = held_scene(100).await;
    // Four in flight at the receiver, and claimed beyond its own window of 8 up to the
    // budget (8 × 4): the first claim found as many due as it asked for.
    wait_for("the budget claimed", || {
        received.load(Ordering::SeqCst) == 4 && scene.with_status("delivering") == 32
    })
    .await;
    assert_eq!(
        scene.spare_slots.lent(),
        24,
        "the budget less its own window"
    );

    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    wait_for("every delivery sent", || scene.succeeded() == 100).await;
    wait_for("the loan returned", || scene.spare_slots.lent() == 0).await;
}

#[tokio::test]
async fn a_busy_webhook_claims_its_next_deliveries_in_the_commit_that_records_its_last() {
    // A budget of one window lends nothing: the room stays the actor's own.
    let (gate, received, scene) = held_scene_with(20, SpareSlots::with_budget(4, 8)).await;
    // Four in flight (held at the receiver) and four more claimed: the actor's whole room.
    wait_for("a full room of claims", || {
        received.load(Ordering::SeqCst) == 4 && scene.with_status("delivering") == 8
    })
    .await;

    // One answer at a time: each outcome's record is one writer job, and the claim of the
    // delivery that takes its place rides in it rather than in a job of its own.
    let before = scene.writer_jobs();
    let rounds = 10;
    for round in 1..=rounds {
        gate.add_permits(1);
        wait_for("the answer recorded and the next request sent", || {
            scene.succeeded() == round && received.load(Ordering::SeqCst) == 4 + round as usize
        })
        .await;
    }
    wait_for("the room filled again", || {
        scene.with_status("delivering") == 8
    })
    .await;
    // One job per round, and one to spare: the writer counts a batch just after answering
    // it, so the last claim before `before` may be counted after it. Without the claims
    // riding in the record jobs, ten rounds take about twenty jobs.
    let jobs = scene.writer_jobs() - before;
    assert!(
        jobs <= rounds as u64 + 1,
        "{jobs} writer jobs for {rounds} outcomes and as many claims"
    );
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    wait_for("every delivery sent", || scene.succeeded() == 20).await;
}
