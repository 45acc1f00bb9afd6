//! Recovery: a job this node has claimed (found unfinished at start-up, orphaned by a node
//! that stopped, or queued on a busy node) runs again from its stored file.

use std::sync::Arc;

use datavista_shared::protocol::{Job, JobProgress, JobState};

use super::control::{Arrival, Publish, UploadEnd};
use super::{JobControl, JobError, JobRunner, Rules, STOPPED_MID_UPLOAD};
use crate::owner::OwnerId;

impl JobRunner {
    /// Run a job this node has just claimed (found unfinished at start-up, orphaned by a
    /// node that stopped, or queued on a busy node): validate its stored file again, or mark
    /// it failed when there is none. Err, with nothing changed, when the storage cannot say
    /// whether the file is there (the caller lets go of the job, to be taken again later).
    /// Blocking.
    pub fn recover(
        self: &Arc<Self>,
        owner: OwnerId,
        mut job: Job,
        rules: Option<Rules>,
    ) -> Result<(), JobError> {
        let stored_size = match job.state {
            JobState::Uploading => None, // cut off half-way: never complete
            _ => match self.storage.upload_len(&job.id) {
                Ok(size) => Some(size),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(JobError::StoredFile(e)),
            },
        };
        match (rules, stored_size) {
            (Some(rules), Some(size)) => {
                job.state = JobState::Queued;
                job.progress = JobProgress {
                    bytes_done: 0,
                    bytes_total: Some(size),
                    rows: 0,
                    errors: 0,
                };
                let control = Arc::new(JobControl::new(
                    owner,
                    job,
                    Arrival {
                        written: size,
                        end: UploadEnd::Complete,
                    },
                ));
                self.running().insert(control.id.clone(), control.clone());
                control.publish(&self.publisher, Publish::Change);
                self.spawn_validation(control, rules);
            }
            (rules, _) => {
                job.state = JobState::Failed;
                job.reason = Some(match rules {
                    None => "the job's schema is no longer available".to_owned(),
                    Some(_) => STOPPED_MID_UPLOAD.to_owned(),
                });
                job.updated_at_ms = crate::clock::now_ms();
                match self.publisher.job_changed(&owner, &job) {
                    Ok(Some(_)) => {
                        let _ = self.storage.remove_upload(&job.id);
                    }
                    Ok(None) => {} // another node has it now
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "could not mark an interrupted job failed")
                    }
                }
            }
        }
        Ok(())
    }
}
