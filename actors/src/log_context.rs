//! Which TaskExecutor the current thread works for, so log lines written on a slot thread
//! (the runtime's and user code's alike) can go to that TaskExecutor's own log file.

use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static TASK_EXECUTOR: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Marks the current thread as working for TaskExecutor `id` (its slot threads).
pub fn set_task_executor(id: &str) {
    TASK_EXECUTOR.with(|t| *t.borrow_mut() = Some(Arc::from(id)));
}

/// The TaskExecutor the current thread works for, if any.
pub fn task_executor() -> Option<Arc<str>> {
    TASK_EXECUTOR.with(|t| t.borrow().clone())
}
