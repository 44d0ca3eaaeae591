//! Names of the threads that run subtasks, so a thread dump (and `top -H`) maps a thread to
//! the TaskExecutor slot whose subtasks it runs. A slot is one OS thread (an actix Arbiter,
//! which names its threads after the actix system); the slot renames it once it runs.

/// Linux keeps at most 15 bytes of a thread's name.
pub const MAX_THREAD_NAME: usize = 15;

/// The name of slot `index`'s thread of TaskExecutor `executor`: `te<n>-slot<index>` for an
/// executor id ending in a number `n` (`taskexecutor-0`, a TaskManager process's id), else
/// `slot<index>`; cut to [`MAX_THREAD_NAME`] bytes.
pub fn slot_thread_name(executor: &str, index: u32) -> String {
    let digits: String = executor.chars().rev().take_while(char::is_ascii_digit).collect();
    let digits: String = digits.chars().rev().collect();
    let name = if digits.is_empty() { format!("slot{index}") } else { format!("te{digits}-slot{index}") };
    let mut cut = name.len().min(MAX_THREAD_NAME);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name[..cut].to_string()
}

/// Names the calling thread (Linux: `/proc/thread-self/comm`); elsewhere, or if the kernel
/// refuses, the thread keeps its name (only the thread dump is less telling).
pub fn name_current_thread(name: &str) {
    if let Err(e) = std::fs::write("/proc/thread-self/comm", name.as_bytes()) {
        tracing::debug!("cannot name thread '{name}': {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_threads_are_named_after_executor_and_slot() {
        assert_eq!(slot_thread_name("taskexecutor-0", 1), "te0-slot1");
        assert_eq!(slot_thread_name("tm-12", 3), "te12-slot3");
        assert_eq!(slot_thread_name("local", 2), "slot2");
        assert_eq!(slot_thread_name("x-123456789012", 4000), "te123456789012-");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_calling_thread_takes_its_name() {
        let got = std::thread::spawn(|| {
            name_current_thread("te7-slot3");
            std::fs::read_to_string("/proc/thread-self/comm").unwrap().trim_end().to_string()
        })
        .join()
        .unwrap();
        assert_eq!(got, "te7-slot3");
    }
}
