//! Arbitrary UTF-8 into the config parser: `timeoutd --check-config`, the
//! start-up load and every reload go through `config::parse`. It must
//! return a config or located errors, never panic; a config it accepts must
//! also be describable (`--check-config` prints it).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match timeoutd::config::parse(Path::new("/etc/session-timeout.toml"), text) {
        Ok(cfg) => {
            let _ = timeoutd::config::explain::describe(&cfg);
        }
        Err(errs) => {
            assert!(!errs.0.is_empty(), "an error result without errors");
            let _ = errs.to_string();
        }
    }
});
