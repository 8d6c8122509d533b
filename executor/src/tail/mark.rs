//! Waiting for a file that a job writes once, as its last act.
//!
//! A batch job's script can say that it has ended sooner than its scheduler's client will:
//! `sbatch --wait` looks at the job only every 2, 8, then 32 seconds. The script writes its exit
//! status to a file on the shared file system as it exits; batchci, woken by the same shared
//! inotify watcher that serves the output followers (and polling beside it, for writes made on
//! another NFS client), reads it the moment it is complete.

use std::path::Path;
use std::time::Duration;

use super::watch::WatchHub;

/// Resolves once `path` holds a complete line (one that ends in a newline), with that line.
///
/// The writer creates the file and then writes the line, so a file without its newline is one
/// being written: it is read again on the next wake-up. Never resolves for a file that never
/// appears; the caller races it against the scheduler's own word.
pub(crate) async fn written_line(path: &Path, poll_interval: Duration) -> String {
    let poll_interval = poll_interval.max(super::MIN_PAUSE);
    let mut subscription = WatchHub::global().subscribe(path, poll_interval);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some((line, _)) = text.split_once('\n')
        {
            return line.to_string();
        }
        tokio::select! {
            () = subscription.changed() => {}
            () = tokio::time::sleep(poll_interval) => {
                subscription.try_watch();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_written_in_two_pieces_is_returned_whole_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step_exit");
        std::fs::write(&path, "4").unwrap();
        let waiting = tokio::spawn({
            let path = path.clone();
            async move { written_line(&path, Duration::from_millis(20)).await }
        });
        // Half a line is no answer: the waiter is still waiting after several polls.
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        std::fs::write(&path, "42\n").unwrap();
        assert_eq!(waiting.await.unwrap(), "42");
    }

    #[tokio::test]
    async fn a_file_whose_directory_appears_later_is_still_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later").join("step_exit");
        let waiting = tokio::spawn({
            let path = path.clone();
            async move { written_line(&path, Duration::from_millis(20)).await }
        });
        std::fs::create_dir(dir.path().join("later")).unwrap();
        std::fs::write(&path, "0\n").unwrap();
        assert_eq!(waiting.await.unwrap(), "0");
    }
}
