//! A small tokio runtime of a component's own, for blocking callers of async clients (the
//! PostgreSQL store, the object store). The callers are often threads that drive async tasks
//! themselves, where `Runtime::block_on` panics; [`SideRuntime::wait_for`] works anywhere.

use std::future::Future;

pub struct SideRuntime {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl SideRuntime {
    pub fn new(thread_name: &str, threads: usize) -> std::io::Result<SideRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(thread_name)
            .enable_all()
            .build()?;
        Ok(SideRuntime::from(runtime))
    }

    /// A runtime built otherwise, dropped the same way.
    pub fn from(runtime: tokio::runtime::Runtime) -> SideRuntime {
        SideRuntime {
            runtime: Some(runtime),
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives until the drop")
    }

    /// Run `future` on this runtime and block the calling thread until it is done. `None` when
    /// the task never finished (it panicked, or the runtime is shutting down).
    pub fn wait_for<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = done.send(future.await);
        });
        result.recv().ok()
    }

    /// Run `work` on this runtime's blocking threads; awaitable from any runtime.
    pub fn spawn_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.runtime().spawn_blocking(work)
    }

    /// Run `future` on this runtime without waiting for it.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.runtime().spawn(future)
    }
}

impl Drop for SideRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed on an async thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
