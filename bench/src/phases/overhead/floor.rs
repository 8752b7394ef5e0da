//! The physical floor: bare exchanges of the module's payload sizes with a
//! trivial server (`st-bench __floor-server`) in another process.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use session_timeout_proto::{read_frame, write_frame, VERSION};

use super::WARMUP;
use crate::harness::ctx::Ctx;
use crate::results::stats::{summarize, Summary};
use crate::util::wait_until;

/// `st-bench __floor-server PATH REGISTER_REPLY_LEN UNREGISTER_REPLY_LEN`:
/// answers each connection's one frame with a frame of the daemon's reply size.
pub fn floor_server_main(args: &[String]) -> ExitCode {
    let [path, reg_len, unreg_len] = args else {
        return ExitCode::from(2);
    };
    let (Ok(reg_len), Ok(unreg_len)) = (reg_len.parse::<usize>(), unreg_len.parse::<usize>())
    else {
        return ExitCode::from(2);
    };
    let Ok(listener) = UnixListener::bind(path) else {
        return ExitCode::from(1);
    };
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let Ok(body) = read_frame(&mut s) else {
            continue;
        };
        let len = if body.get(1) == Some(&1) {
            reg_len
        } else {
            unreg_len
        };
        let mut reply = vec![0u8; len.max(2)];
        reply[0] = VERSION;
        let _ = write_frame(&mut s, &reply);
    }
    ExitCode::SUCCESS
}

/// One bare exchange: connect, send `frame`, read the reply frame, close.
fn bare_exchange(path: &Path, body: &[u8]) -> Result<(), String> {
    let mut s = UnixStream::connect(path).map_err(|e| e.to_string())?;
    write_frame(&mut s, body).map_err(|e| e.to_string())?;
    read_frame(&mut s).map_err(|e| e.to_string())?;
    Ok(())
}

/// Bare exchanges with a trivial server in another process: one exchange,
/// and the open+close pair.
pub(super) fn measure_floor(
    ctx: &Ctx,
    reg_body: &[u8],
    unreg_body: &[u8],
    reg_reply_len: usize,
    unreg_reply_len: usize,
) -> Result<[Option<Summary>; 2], String> {
    let path = ctx.host.dir("floor").join("floor.sock");
    // A previous run's socket (`--runs`) would look ready, and refuse.
    let _ = std::fs::remove_file(&path);
    let mut server = Command::new(&ctx.exe)
        .arg("__floor-server")
        .arg(&path)
        .arg(reg_reply_len.to_string())
        .arg(unreg_reply_len.to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("floor server: {e}"))?;
    let res = (|| {
        if !wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            path.exists()
        }) {
            return Err("floor server did not listen".to_owned());
        }
        for _ in 0..WARMUP {
            bare_exchange(&path, reg_body)?;
        }
        let (mut one, mut pair) = (Vec::new(), Vec::new());
        for _ in 0..ctx.opts.iterations {
            let t0 = Instant::now();
            bare_exchange(&path, reg_body)?;
            let t1 = Instant::now();
            bare_exchange(&path, unreg_body)?;
            let t2 = Instant::now();
            one.push((t1 - t0).as_secs_f64() * 1e3);
            pair.push((t2 - t0).as_secs_f64() * 1e3);
        }
        Ok([summarize(&one), summarize(&pair)])
    })();
    let _ = server.kill();
    let _ = server.wait();
    res
}
