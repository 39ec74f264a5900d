//! What becomes of a delivery actor's attempts: their outcomes, written in batches (and
//! again when the store refused them), and the lease sweep's questions about its claims.

use std::collections::HashSet;

use ractor::ActorRef;

use super::{ActorState, RECORD_RETRY, Recorded, WebhookMsg};
use crate::delivery::client::AttemptReport;
use crate::delivery::supervisor::SupervisorMsg;
use crate::delivery::{attempt_record, next_step};
use crate::domain::time::{Millis, now_ms};
use crate::store::claims::{self, Claim, ClaimedDelivery, ExpiredClaim};
use crate::store::deliveries::{self, AttemptRecord, NextStep};
use crate::telemetry::AttemptOutcome;

impl ActorState {
    /// The sweep's list of this webhook's claims past their lease: the ones this actor
    /// still works on get a new lease; the others were lost (a claim that committed after
    /// its actor died, a release that failed) and are settled: released, or failed for a
    /// test delivery.
    pub(super) fn expired(&mut self, me: &ActorRef<WebhookMsg>, claims: Vec<ExpiredClaim>) {
        let held: HashSet<Claim> = self
            .in_flight
            .0
            .values()
            .map(|(claim, _)| *claim)
            .chain(self.queued.iter().map(ClaimedDelivery::claim))
            .chain(self.recording.iter().copied())
            .chain(self.unrecorded.iter().map(AttemptRecord::claim))
            .collect();
        let (renew, lost): (Vec<ExpiredClaim>, Vec<ExpiredClaim>) =
            claims.into_iter().partition(|c| held.contains(&c.claim));
        let renew: Vec<Claim> = renew.into_iter().map(|c| c.claim).collect();
        let until = self.ctx.lease_until(now_ms());
        self.releasing += 1;
        let (store, me) = (self.ctx.store.clone(), me.clone());
        tokio::spawn(async move {
            let result = store
                .write(move |conn| {
                    claims::extend_leases(conn, &renew, until)?;
                    claims::settle_lost_claims(conn, &lost, now_ms())
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "could not settle expired claims; the next sweep tries again");
            }
            let _ = me.cast(WebhookMsg::Released);
            let _ = me.cast(WebhookMsg::Wake);
        });
    }

    pub(super) fn finished(
        &mut self,
        me: &ActorRef<WebhookMsg>,
        delivery: ClaimedDelivery,
        report: Option<AttemptReport>,
    ) {
        self.in_flight.0.remove(&delivery.id);
        let Some(report) = report else {
            // Withdrawn before it was sent: nothing happened, hand it back.
            self.release(me, vec![delivery.claim()]);
            return;
        };
        let next = next_step(&report, &delivery, &self.webhook);
        let outcome = match &next {
            NextStep::Succeeded => AttemptOutcome::Succeeded,
            NextStep::RetryAt(at) => {
                self.wake_at(me, *at);
                AttemptOutcome::Retry
            }
            NextStep::Failed => AttemptOutcome::Failed,
            NextStep::DisableWebhook(_) => {
                tracing::warn!(webhook_id = %self.webhook.id, "receiver answered 410 Gone; disabling the webhook");
                self.stop_claiming(me);
                AttemptOutcome::Disabled
            }
        };
        self.ctx
            .telemetry
            .attempt_finished(outcome, report.duration);
        tracing::debug!(webhook_id = %self.webhook.id, delivery_id = %delivery.id, status = ?report.status_code, outcome = outcome.as_str(), "attempt finished");
        self.unrecorded
            .push(attempt_record(&report, &delivery, &self.webhook, next));
        self.flush_records(me);
        self.start_sends(me);
        // Claim again once the prefetch runs low, so claims stay batched.
        if self.rewake && self.queued.len() <= self.max_in_flight() / 2 {
            self.claim(me);
        }
    }

    /// Hands every waiting outcome to the store in one job, unless a job is under way (its
    /// notice flushes what arrived meanwhile) or the store refused the last one and a retry
    /// is scheduled. The job also claims what its outcomes make room for
    /// ([`Self::claim_in_record_job`]), so a busy webhook pays one commit per round of
    /// deliveries instead of two.
    pub(super) fn flush_records(&mut self, me: &ActorRef<WebhookMsg>) {
        if !self.recording.is_empty() || self.unrecorded.is_empty() || self.record_retry_pending {
            return;
        }
        self.fit_loan(); // while the records still count as held: their slots stay lent
        let records = std::mem::take(&mut self.unrecorded);
        let claim = self.claim_in_record_job();
        self.recording = records.iter().map(AttemptRecord::claim).collect();
        if claim > 0 {
            self.claiming = true;
            self.claiming_with_records = true;
            self.asked = claim;
            self.rewake = false;
        }
        let (store, limit, me) = (
            self.ctx.store.clone(),
            self.ctx.auto_disable_after,
            me.clone(),
        );
        let (webhook_id, ordering) = (self.webhook.id, self.webhook.ordering);
        let lease = self.ctx.lease_until(now_ms());
        tokio::spawn(async move {
            let job_records = records.clone();
            let result = store
                .write_relaxed(move |conn| {
                    let effect = deliveries::record_attempts(conn, &job_records, limit, now_ms())?;
                    let claimed = if claim > 0 && !effect.webhook_disabled {
                        Some(claims::claim_due(
                            conn,
                            webhook_id,
                            ordering,
                            now_ms(),
                            lease,
                            claim,
                        )?)
                    } else {
                        None
                    };
                    Ok((effect, claimed))
                })
                .await
                .map(|(effect, claimed)| Recorded {
                    effect,
                    retry_at: earliest_retry(&records),
                    claimed,
                })
                .map_err(|error| (error.to_string(), records));
            let _ = me.cast(WebhookMsg::Recorded(result));
        });
    }

    /// How many deliveries the record job about to start claims in its own commit: the room
    /// left once its outcomes are written (they are taken off `unrecorded` already and not
    /// yet counted as `recording`). A FIFO webhook with nothing else out claims its next
    /// head there; a concurrent one claims while it has found more due than it had room
    /// for (`rewake`). None while a claim is under way or the actor is stopping.
    fn claim_in_record_job(&self) -> u32 {
        if self.stopping || self.claiming || !(self.is_fifo() || self.rewake) {
            return 0;
        }
        self.room()
    }

    /// A record job's notice. Outcomes the store refused are kept and written again after
    /// [`RECORD_RETRY`]: their deliveries stay claimed meanwhile, never lost nor doubled.
    pub(super) fn recorded(
        &mut self,
        me: &ActorRef<WebhookMsg>,
        result: Result<Recorded, (String, Vec<AttemptRecord>)>,
    ) {
        self.recording.clear();
        if std::mem::take(&mut self.claiming_with_records) {
            self.claiming = false;
        }
        match result {
            Ok(recorded) => {
                let notified: Vec<_> = recorded.effect.notify.queues().collect();
                if !notified.is_empty() {
                    let _ = self.supervisor.cast(SupervisorMsg::Wake(notified));
                }
                if recorded.effect.webhook_disabled {
                    tracing::warn!(webhook_id = %self.webhook.id, "webhook disabled; its pending deliveries are paused until it is re-enabled");
                    self.stop_claiming(me);
                } else if let Some(at) = recorded.retry_at {
                    // The timer may have fired before this record made the delivery
                    // claimable again; make sure a wake follows the commit.
                    self.wake_at(me, at);
                }
                match recorded.claimed {
                    Some(claimed) => self.claimed(me, Ok(claimed)),
                    // A FIFO webhook's head may be claimable now that its outcome is in.
                    None if self.is_fifo() => self.rewake = true,
                    None => {}
                }
            }
            Err((error, records)) => {
                tracing::error!(webhook_id = %self.webhook.id, %error, "could not record attempts; writing them again shortly");
                let later = std::mem::replace(&mut self.unrecorded, records);
                self.unrecorded.extend(later);
                self.record_retry_pending = true;
                me.send_after(RECORD_RETRY, || WebhookMsg::RetryRecords);
                self.rewake = true;
            }
        }
        self.flush_records(me);
        if self.rewake {
            self.claim(me);
        }
    }
}

fn earliest_retry(records: &[AttemptRecord]) -> Option<Millis> {
    records
        .iter()
        .filter_map(|r| match r.next {
            NextStep::RetryAt(at) => Some(at),
            _ => None,
        })
        .min()
}
