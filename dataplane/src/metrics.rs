//! What the data plane counts, kept in plain numbers and handed to the Python side as
//! one cumulative snapshot when it asks (on each scrape of the gateway's metrics);
//! the Python side folds it into the same metric families it serves
//! (`gateway_metrics.py`).

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{json, Value};

pub struct Histogram {
    counts: Vec<u64>, // one per bound, then +Inf
    total: f64,
}

impl Histogram {
    fn new(bounds: usize) -> Self {
        Self { counts: vec![0; bounds + 1], total: 0.0 }
    }
}

type Name = Rc<str>;

#[derive(Default)]
pub struct Metrics {
    bounds: Vec<f64>,
    requests: HashMap<(Name, Name, Name, u16), u64>,
    seconds: HashMap<(Name, Name), Histogram>,
    overhead: HashMap<Name, Histogram>,
    shadow_errors: HashMap<(Name, Name), u64>,
    shadow_skipped: HashMap<(Name, Name), u64>,
    mirror_drops: HashMap<Name, u64>,
    breaker_refusals: HashMap<(Name, Name, &'static str), u64>,
}

fn observe(histogram: &mut Histogram, bounds: &[f64], value: f64) {
    // Prometheus buckets are "less than or equal": the first bound >= value
    let at = bounds.partition_point(|&bound| bound < value);
    histogram.counts[at] += 1;
    histogram.total += value;
}

impl Metrics {
    pub fn set_bounds(&mut self, bounds: Vec<f64>) {
        if bounds != self.bounds {
            *self = Self { bounds, ..Self::default() };
        }
    }

    /// Count one answer and observe its time and the data plane's own share of it.
    pub fn answered(
        &mut self,
        service: &Name,
        route: &Name,
        version: &Name,
        status: u16,
        seconds: f64,
        own: f64,
    ) {
        *self
            .requests
            .entry((service.clone(), route.clone(), version.clone(), status))
            .or_default() += 1;
        let bounds = self.bounds.len();
        let timings = self
            .seconds
            .entry((service.clone(), version.clone()))
            .or_insert_with(|| Histogram::new(bounds));
        observe(timings, &self.bounds, seconds);
        let share = self.overhead.entry(service.clone()).or_insert_with(|| Histogram::new(bounds));
        observe(share, &self.bounds, own);
    }

    /// Count an answer that has no time to record (a client gone mid-body).
    pub fn count(&mut self, service: &Name, route: &Name, version: &Name, status: u16) {
        *self
            .requests
            .entry((service.clone(), route.clone(), version.clone(), status))
            .or_default() += 1;
    }

    pub fn shadow_error(&mut self, service: &Name, version: &Name) {
        *self.shadow_errors.entry((service.clone(), version.clone())).or_default() += 1;
    }

    pub fn shadow_skipped(&mut self, service: &Name, version: &Name) {
        *self.shadow_skipped.entry((service.clone(), version.clone())).or_default() += 1;
    }

    pub fn mirror_drop(&mut self, service: &Name) {
        *self.mirror_drops.entry(service.clone()).or_default() += 1;
    }

    pub fn breaker_refusal(&mut self, service: &Name, version: &Name, reason: &'static str) {
        *self.breaker_refusals.entry((service.clone(), version.clone(), reason)).or_default() += 1;
    }

    pub fn snapshot(&self) -> Value {
        let pairs = |map: &HashMap<(Name, Name), u64>| -> Vec<Value> {
            map.iter().map(|((s, v), n)| json!([&**s, &**v, n])).collect()
        };
        json!({
            "requests": self.requests.iter().map(|((s, r, v, status), n)| json!([&**s, &**r, &**v, status, n])).collect::<Vec<_>>(),
            "seconds": self.seconds.iter().map(|((s, v), h)| json!([&**s, &**v, h.counts, h.total])).collect::<Vec<_>>(),
            "overhead": self.overhead.iter().map(|(s, h)| json!([&**s, h.counts, h.total])).collect::<Vec<_>>(),
            "shadow_errors": pairs(&self.shadow_errors),
            "shadow_skipped": pairs(&self.shadow_skipped),
            "mirror_drops": self.mirror_drops.iter().map(|(s, n)| json!([&**s, n])).collect::<Vec<_>>(),
            "breaker_refusals": self.breaker_refusals.iter().map(|((s, v, r), n)| json!([&**s, &**v, r, n])).collect::<Vec<_>>(),
        })
    }
}
