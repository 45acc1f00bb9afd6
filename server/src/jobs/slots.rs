//! Upload slots: how many uploads one owner, and the whole server, run at once.

use std::collections::HashMap;
use std::sync::Arc;

use super::JobRunner;
use crate::owner::OwnerId;

#[derive(Default)]
pub(super) struct UploadCounts {
    per_owner: HashMap<OwnerId, usize>,
    total: usize,
}

/// Why an upload slot was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The owner runs as many uploads as one owner may.
    Owner,
    /// The server runs as many uploads as it takes from everyone.
    Server,
}

impl JobRunner {
    /// Count an upload against its owner's cap and the server's.
    pub fn begin_upload_slot(self: &Arc<Self>, owner: &OwnerId) -> Result<UploadSlot, SlotRefused> {
        let mut counts = crate::sync::lock(&self.uploads);
        if counts.total >= self.upload_limits.total {
            return Err(SlotRefused::Server);
        }
        let count = counts.per_owner.entry(owner.clone()).or_default();
        if *count >= self.upload_limits.per_owner {
            return Err(SlotRefused::Owner);
        }
        *count += 1;
        counts.total += 1;
        Ok(UploadSlot {
            runner: self.clone(),
            owner: owner.clone(),
        })
    }
}

/// One of an owner's concurrent upload slots; given back on drop.
pub struct UploadSlot {
    runner: Arc<JobRunner>,
    owner: OwnerId,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut counts = crate::sync::lock(&self.runner.uploads);
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_owner.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.per_owner.remove(&self.owner);
            }
        }
    }
}
