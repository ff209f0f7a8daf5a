//! The shadow's circuit breaker, as `Breaker` in `routing/breaker.py`: after `failures`
//! in a row it opens for a cooldown; then one copy goes through as a probe. A success
//! closes it; a failed probe opens it again for twice as long, up to `max_cooldown`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: f64,
    probing: bool,
}

pub struct Breaker {
    threshold: u32,
    cooldown: f64,
    max_cooldown: f64,
    states: HashMap<String, State>,
}

impl Breaker {
    pub fn new(failures: u32, cooldown: f64, max_cooldown: f64) -> Self {
        Self {
            threshold: failures,
            cooldown,
            max_cooldown,
            states: HashMap::new(),
        }
    }

    /// Whether to send this copy. While open, no; once the cooldown is over, one probe.
    pub fn allow(&mut self, version: &str) -> bool {
        let Some(state) = self.states.get_mut(version) else {
            return true;
        };
        if state.failures < self.threshold {
            return true;
        }
        if state.probing || state.open_until.is_some_and(|until| Instant::now() < until) {
            return false;
        }
        state.probing = true;
        true
    }

    pub fn record(&mut self, version: &str, succeeded: bool) {
        if succeeded {
            self.states.remove(version);
            return;
        }
        let state = self.states.entry(version.to_string()).or_default();
        let was_probe = std::mem::replace(&mut state.probing, false);
        state.failures += 1;
        if state.failures < self.threshold {
            return;
        }
        if was_probe || state.cooldown == 0.0 {
            state.cooldown = if was_probe {
                (state.cooldown * 2.0).min(self.max_cooldown)
            } else {
                self.cooldown
            };
            state.open_until = Some(Instant::now() + Duration::from_secs_f64(state.cooldown));
        }
    }
}
