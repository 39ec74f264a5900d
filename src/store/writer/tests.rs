//! The writer's batching, and what becomes of a batch when one of its jobs fails or panics.

use tokio::sync::oneshot;

use super::super::health::{Health, Part};
use super::super::{Store, StoreError, open_pool};
use super::{
    BUSY, Closure, Command, Durability, Job, MAX_BATCH, Queue, RELAXED_BESIDE_DURABLE, commit_batch,
};

fn job(durability: Durability) -> Command {
    let (reply, _) = oneshot::channel::<super::Result<()>>();
    Command::Run(Box::new(Closure::new(
        durability,
        |_: &rusqlite::Connection| Ok(()),
        reply,
    )))
}

fn kinds(batch: &[Box<dyn Job>]) -> (usize, usize) {
    let durable = batch
        .iter()
        .filter(|j| j.durability() == Durability::Durable)
        .count();
    (durable, batch.len() - durable)
}

#[test]
fn when_busy_durable_jobs_come_first_and_relaxed_ones_still_move() {
    let mut queue = Queue::default();
    let mut closing = None;
    for _ in 0..20 {
        queue.add(job(Durability::Relaxed), &mut closing);
        queue.add(job(Durability::Durable), &mut closing);
    }
    assert_eq!(kinds(&queue.next_batch()), (20, RELAXED_BESIDE_DURABLE));
    // Not busy: a few durable jobs and every relaxed one that waits.
    for _ in 0..BUSY - 1 {
        queue.add(job(Durability::Durable), &mut closing);
    }
    assert_eq!(
        kinds(&queue.next_batch()),
        (BUSY - 1, 20 - RELAXED_BESIDE_DURABLE)
    );
    assert!(queue.is_empty());
    for _ in 0..MAX_BATCH + 1 {
        queue.add(job(Durability::Relaxed), &mut closing);
    }
    assert_eq!(kinds(&queue.next_batch()), (0, MAX_BATCH));
}

fn count(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap()
}

fn insert(conn: &rusqlite::Connection, action: &str) -> super::Result<()> {
    conn.execute(
        "INSERT INTO audit_log (at, key_id, action, target_type, target_id) VALUES (0, 'k', ?1, 't', 'i')",
        [action],
    )?;
    Ok(())
}

#[tokio::test]
async fn a_failing_job_rolls_back_alone_while_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &crate::telemetry::Telemetry::new()).unwrap();
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = store.clone();
        jobs.spawn(async move {
            let work = move |c: &rusqlite::Connection| {
                insert(c, "kept")?;
                if i % 2 == 0 {
                    return Err(StoreError::Conflict {
                        code: "x",
                        message: "no".into(),
                    });
                }
                Ok(())
            };
            if i % 3 == 0 {
                store.write_relaxed(work).await
            } else {
                store.write(work).await
            }
        });
    }
    let results = jobs.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 100);
    store.close().await;
    let conn = store.connection().unwrap();
    assert_eq!(
        count(&conn),
        100,
        "exactly the successful jobs' rows are committed"
    );
}

/// What a job of [`a_panicking_job_fails_alone_and_the_rest_of_its_batch_commits`] does
/// after inserting its row.
#[derive(Clone, Copy, Debug)]
enum Then {
    Succeed,
    Fail,
    Panic,
}

/// A job that inserts a row, then does `then`; and where its answer will arrive.
fn scripted(then: Then) -> (Box<dyn Job>, oneshot::Receiver<super::Result<()>>) {
    let (reply, answer) = oneshot::channel();
    let work = move |c: &rusqlite::Connection| {
        insert(c, "scripted")?;
        match then {
            Then::Succeed => Ok(()),
            Then::Fail => Err(StoreError::Conflict {
                code: "x",
                message: "no".into(),
            }),
            Then::Panic => panic!("a bug in a write job"),
        }
    };
    let job = Closure::new(Durability::Durable, work, reply);
    (Box::new(job), answer)
}

#[test]
fn a_panicking_job_fails_alone_and_the_rest_of_its_batch_commits() {
    use Then::*;
    // A panic in the first, optimistic run of the batch; and one in the re-run, where each
    // job has its own savepoint (the earlier failure sent the batch there).
    for script in [
        [Succeed, Panic, Succeed, Succeed],
        [Succeed, Fail, Succeed, Panic],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path()).unwrap();
        let conn = pool.get().unwrap();
        let (mut batch, answers): (Vec<_>, Vec<_>) =
            script.iter().map(|then| scripted(*then)).unzip();
        commit_batch(&conn, &mut batch, &mut None, &Health::default());
        for (then, answer) in script.iter().zip(answers) {
            let answer = answer.blocking_recv().unwrap();
            match then {
                Succeed => assert!(answer.is_ok(), "{script:?}: {answer:?}"),
                Fail => assert!(matches!(answer, Err(StoreError::Conflict { .. }))),
                Panic => assert!(matches!(answer, Err(StoreError::Panicked)), "{answer:?}"),
            }
        }
        assert!(conn.is_autocommit(), "no transaction is left open");
        let kept = script.iter().filter(|t| matches!(t, Succeed)).count() as i64;
        assert_eq!(
            count(&conn),
            kept,
            "{script:?}: the good jobs' rows, and only theirs"
        );
    }
}

#[tokio::test]
async fn a_panicking_write_fails_its_caller_and_the_writer_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &crate::telemetry::Telemetry::new()).unwrap();
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..100 {
        let store = store.clone();
        jobs.spawn(async move {
            let work = move |c: &rusqlite::Connection| {
                insert(c, "kept")?;
                assert!(i % 10 != 0, "a bug in a write job");
                Ok(())
            };
            (i, store.write(work).await)
        });
    }
    for (i, result) in jobs.join_all().await {
        if i % 10 == 0 {
            assert!(matches!(result, Err(StoreError::Panicked)), "{result:?}");
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    store.write(|c| insert(c, "after")).await.unwrap();
    assert!(store.writable());
    let read = store.read(|_| -> super::Result<()> { panic!("a bug in a read") });
    assert!(matches!(read.await, Err(StoreError::Panicked)));
    store.close().await;
    assert_eq!(count(&store.connection().unwrap()), 91);
}

#[tokio::test]
async fn a_probe_write_commits_a_change_that_other_connections_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &crate::telemetry::Telemetry::new()).unwrap();
    let other = store.connection().unwrap();
    // SQLite's data_version moves only when another connection commits pages: a commit
    // that wrote nothing would not need the disk, and would prove nothing.
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let before = version(&other);
    store.probe_write().await.unwrap();
    assert_ne!(version(&other), before);
    // And it changes a row: only a commit that changed one clears a noted fault.
    let probed: i64 = other
        .query_row("SELECT probed_at FROM write_probe", [], |r| r.get(0))
        .unwrap();
    assert!(probed > 0);
    store.close().await;
}

#[test]
fn only_a_commit_that_wrote_clears_a_storage_fault() {
    let dir = tempfile::tempdir().unwrap();
    let pool = open_pool(dir.path()).unwrap();
    let conn = pool.get().unwrap();
    let health = Health::default();
    health.note(Part::Writer, Err(&"disk full" as &dyn std::fmt::Display));

    // A batch that changed nothing (an empty claim) commits on a full disk too.
    let (reply, _) = oneshot::channel::<super::Result<()>>();
    let nothing = Closure::new(
        Durability::Relaxed,
        |_: &rusqlite::Connection| Ok(()),
        reply,
    );
    commit_batch(&conn, &mut vec![Box::new(nothing)], &mut None, &health);
    assert!(
        !health.writable(),
        "a commit that wrote nothing proves nothing"
    );

    let (wrote, _) = scripted(Then::Succeed);
    commit_batch(&conn, &mut vec![wrote], &mut None, &health);
    assert!(health.writable(), "a commit that wrote clears the fault");
}
