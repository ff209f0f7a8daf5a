//! Circuit breakers, as `routing/breaker.py`: a version that keeps failing stops
//! receiving requests for a while.
//!
//! `Breaker` counts failures in a row per version. After `failures` of them it opens
//! for a cooldown; then one request goes through as a probe. A success closes it; a
//! failed probe opens it again for twice as long, up to `max_cooldown`. The data plane
//! keeps one for shadow copies, and `CircuitBreakers` for the primary path of the
//! versions that declare a `circuitBreaker`: requests in flight bounded, and an open
//! breaker ejects the version (its requests get 503 with `Retry-After`, or go to its
//! fallback).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

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
        Self { threshold: failures, cooldown, max_cooldown, states: HashMap::new() }
    }

    /// Whether to send this request. While open, no; once the cooldown is over, one probe.
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

    /// How long until an open breaker lets a probe through (0 when it would now).
    pub fn seconds_left(&self, version: &str) -> f64 {
        let until = self.states.get(version).and_then(|state| state.open_until);
        until.map_or(0.0, |until| until.saturating_duration_since(Instant::now()).as_secs_f64())
    }
}

/// A version's `circuitBreaker`, as the route table carries it.
#[derive(Deserialize, Clone, PartialEq, Debug)]
pub struct Spec {
    pub max_concurrent: Option<usize>,
    pub consecutive_errors: Option<u32>,
    pub ejection_seconds: f64,
    pub max_ejection_seconds: f64,
    pub fallback: Option<String>,
}

pub struct Refusal {
    pub reason: &'static str, // "ejected" or "full"
    pub retry_after: u64,     // seconds, for the Retry-After header
}

/// The primary path's breakers, for the versions with a `circuitBreaker`.
#[derive(Default)]
pub struct CircuitBreakers {
    in_flight: HashMap<String, usize>,
    breakers: HashMap<String, (Spec, Breaker)>,
}

impl CircuitBreakers {
    /// Why a request to `version` may not go now, or None (it may: then `started`).
    pub fn refusal(&mut self, version: &str, spec: &Spec) -> Option<Refusal> {
        if spec.max_concurrent.is_some_and(|most| self.in_flight(version) >= most) {
            return Some(Refusal { reason: "full", retry_after: 1 });
        }
        let breaker = self.breaker(version, spec)?;
        if breaker.allow(version) {
            return None;
        }
        let left = breaker.seconds_left(version).ceil().max(1.0) as u64;
        Some(Refusal { reason: "ejected", retry_after: left })
    }

    pub fn started(&mut self, version: &str) {
        *self.in_flight.entry(version.to_string()).or_default() += 1;
    }

    /// A request `started` ended with `status`.
    pub fn finished(&mut self, version: &str, spec: &Spec, status: u16) {
        if let Some(count) = self.in_flight.get_mut(version) {
            *count = count.saturating_sub(1);
        }
        if let Some(breaker) = self.breaker(version, spec) {
            breaker.record(version, status < 500);
        }
    }

    pub fn in_flight(&self, version: &str) -> usize {
        self.in_flight.get(version).copied().unwrap_or(0)
    }

    /// The version's breaker, made again when a reload changed its numbers.
    fn breaker(&mut self, version: &str, spec: &Spec) -> Option<&mut Breaker> {
        let failures = spec.consecutive_errors?;
        let known = self.breakers.get(version).is_some_and(|(known, _)| known == spec);
        if !known {
            let breaker = Breaker::new(failures, spec.ejection_seconds, spec.max_ejection_seconds);
            self.breakers.insert(version.to_string(), (spec.clone(), breaker));
        }
        self.breakers.get_mut(version).map(|(_, breaker)| breaker)
    }
}
