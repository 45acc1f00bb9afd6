//! The publisher: every job change is stored, then pushed, in one order.

use std::sync::{Arc, Mutex};

use datavista_shared::protocol::{Job, ServerMessage};

use crate::hub::{EventBus, OwnerEvent};
use crate::owner::OwnerId;
use crate::store::{JobStore, StoreResult};

/// Stores a job change, then pushes it, in one order for everyone: sequence numbers reach
/// clients in the order they were given out.
pub struct Publisher {
    store: Arc<dyn JobStore>,
    bus: Arc<dyn EventBus>,
    order: Mutex<()>,
}

impl Publisher {
    pub fn new(store: Arc<dyn JobStore>, bus: Arc<dyn EventBus>) -> Publisher {
        Publisher {
            store,
            bus,
            order: Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Store a new job, then push it. `None` when the id exists. Blocking.
    pub fn job_created(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.store_and_push(owner, job, |store| store.create_job(owner, job))
    }

    /// Store a change, then push it. `None` when this node no longer holds the job (another
    /// node took it over, or it was deleted): nothing is stored or pushed. Blocking.
    pub fn job_changed(&self, owner: &OwnerId, job: &Job) -> StoreResult<Option<u64>> {
        self.store_and_push(owner, job, |store| store.save_job(owner, job))
    }

    fn store_and_push(
        &self,
        owner: &OwnerId,
        job: &Job,
        write: impl FnOnce(&dyn JobStore) -> StoreResult<Option<u64>>,
    ) -> StoreResult<Option<u64>> {
        let _in_order = crate::sync::lock(&self.order);
        let Some(seq) = write(self.store.as_ref())? else {
            return Ok(None);
        };
        let message = ServerMessage::JobUpdate {
            seq,
            job: job.clone().clamped(),
        };
        self.bus.publish(OwnerEvent {
            owner: owner.clone(),
            message,
        });
        Ok(Some(seq))
    }

    /// Ask the other nodes to cancel a job of `owner` that one of them runs.
    pub fn request_cancel(&self, owner: &OwnerId, job_id: &str) {
        self.bus.request_cancel(owner, job_id);
    }

    /// Blocking. False when the owner has no such job.
    pub fn job_removed(&self, owner: &OwnerId, id: &str) -> StoreResult<bool> {
        let _in_order = crate::sync::lock(&self.order);
        let Some(seq) = self.store.delete_job(owner, id)? else {
            return Ok(false);
        };
        self.bus.publish(OwnerEvent {
            owner: owner.clone(),
            message: ServerMessage::JobRemoved {
                seq,
                job_id: id.to_owned(),
            },
        });
        Ok(true)
    }
}
