//! A client that asks the daemon for `status` every 10 ms and keeps each
//! reply's latency: the longest one bounds how long the event loop stalled.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use session_timeout_proto::Request;

use crate::load::client;

const EVERY: Duration = Duration::from_millis(10);

pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<f64>, usize)>,
}

impl Probe {
    pub fn start(socket: PathBuf) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut ms, mut failed) = (Vec::new(), 0usize);
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client::exchange(&socket, &Request::Status, Duration::from_secs(5)) {
                    Ok(_) => ms.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(_) => failed += 1,
                }
                std::thread::sleep(EVERY.saturating_sub(t.elapsed()));
            }
            (ms, failed)
        });
        Probe { stop, thread }
    }

    /// Stops it; the latencies (ms) and how many requests failed.
    pub fn stop(self) -> (Vec<f64>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
