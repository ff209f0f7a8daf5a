//! The route table executed over HTTP, as `routing/gateway.py` executes it: every
//! request is decided, forwarded to its version with `x-mlpatterns-route` set, and
//! answered with `x-mlpatterns-version` and `x-request-id`; the body passes through
//! untouched. A shadow copy goes out on its own, at most `shadow_limit` at a time,
//! its Host marked `-shadow`; its answer, errors and slowness never reach the client,
//! and a shadow that keeps failing stops receiving copies for a while. The table can
//! be swapped while requests are in flight: each request keeps the table it was
//! decided with. The gateway's own paths, and the tables this data plane does not
//! execute (`delegated`), go to the Python gateway behind it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use crate::breaker::{Breaker, CircuitBreakers, Refusal, Spec};
mod upstreams;

use crate::control::Control;
use crate::messages::{is_valid_request_id, kept_headers, latin1, Answer, HeaderRules, Request};
use crate::metrics::Metrics;
use crate::recent::RecentVersions;
use crate::table::{Decision, RequestView, Table, WireTable};
use crate::upstream::{Origin, Pool};

const ROUTE: &[u8] = b"x-mlpatterns-route";
/// set by the data plane for the Python side: never taken from a client (it is one of
/// the `own` headers)
const CLIENT: &[u8] = b"x-mlpatterns-client";

pub struct Settings {
    pub shadow_limit: usize,
    pub default_timeout: Duration,
    pub log_decisions: bool,
    pub access_log: bool,
    pub remembered: usize,
}

/// What the Python side sends on each change of the routes.
#[derive(Deserialize)]
pub struct Config {
    table: WireTable,
    upstreams: HashMap<String, String>,
    delegated: Option<String>,
    buckets: Vec<f64>,
    headers: HeaderRules,
}

/// One line of the decision log, as `routing/gateway.py` writes it (the same fields,
/// in the same order).
#[derive(Serialize)]
pub struct DecisionRecord<'a> {
    request_id: &'a str,
    service: &'a str,
    route: &'a str,
    version: &'a str,
    shadow: Option<&'a str>,
    phase: &'a str,
    status: u16,
    latency_seconds: f64,
    timestamp: &'a str,
}

struct Routes {
    table: Table,
    pools: HashMap<Rc<str>, Rc<Pool>>,
    delegated: bool,
    headers: HeaderRules,
}

struct View<'a> {
    headers: Vec<(String, String)>,
    path: &'a str,
    now: Timestamp,
}

impl RequestView for View<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.path
    }
    fn now(&self) -> Timestamp {
        self.now
    }
}

/// 32 hex digits, like a uuid4: 64 random bits for the process, then a count.
struct Ids {
    prefix: u64,
    next: Cell<u64>,
}

pub struct Gateway {
    routes: RefCell<Option<Rc<Routes>>>,
    pools: RefCell<HashMap<String, Rc<Pool>>>, // by origin: kept across reloads
    delegate: Rc<Pool>,
    settings: Settings,
    shadows: Cell<usize>,
    shadow_breaker: RefCell<Breaker>,
    breakers: RefCell<CircuitBreakers>,
    metrics: RefCell<Metrics>,
    recent: RefCell<RecentVersions>,
    control: Rc<Control>,
    ids: Ids,
    state: Cell<u64>, // xorshift64*: the draws, uniform in [0, 1)
}

fn own_path(path: &str) -> bool {
    path.starts_with("/-/") || path == "/feedback" || path == "/metrics"
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

impl Gateway {
    pub fn new(settings: Settings, delegate: Origin, control: Rc<Control>) -> Self {
        let seed = seed();
        Self {
            routes: RefCell::new(None),
            pools: RefCell::new(HashMap::new()),
            delegate: Rc::new(Pool::new(delegate)),
            recent: RefCell::new(RecentVersions::new(settings.remembered)),
            settings,
            shadows: Cell::new(0),
            shadow_breaker: RefCell::new(Breaker::new(5, 1.0, 30.0)),
            breakers: RefCell::new(CircuitBreakers::default()),
            metrics: RefCell::new(Metrics::default()),
            control,
            ids: Ids { prefix: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), next: Cell::new(0) },
            state: Cell::new(seed),
        }
    }

    /// Swap the routes; requests already decided finish with the table they had.
    pub fn apply(&self, config: Config) -> Result<(), String> {
        let table = Table::compile(config.table)?;
        let mut by_origin = self.pools.borrow_mut();
        let mut kept = HashMap::new();
        let mut pools = HashMap::new();
        for (version, url) in &config.upstreams {
            let pool = match by_origin.get(url) {
                Some(pool) => pool.clone(),
                None if config.delegated.is_some() => continue, // the Python side reaches it
                None => Rc::new(Pool::new(Origin::parse(url)?)),
            };
            kept.insert(url.clone(), pool.clone());
            pools.insert(Rc::from(version.as_str()), pool);
        }
        *by_origin = kept;
        self.metrics.borrow_mut().set_bounds(config.buckets);
        let delegated = config.delegated.is_some();
        let headers = config.headers;
        *self.routes.borrow_mut() = Some(Rc::new(Routes { table, pools, delegated, headers }));
        Ok(())
    }

    pub fn ready(&self) -> bool {
        self.routes.borrow().is_some()
    }

    pub fn version_of(&self, request_id: &str) -> Option<Rc<str>> {
        self.recent.borrow().get(request_id)
    }

    pub fn metrics_snapshot(&self) -> serde_json::Value {
        self.metrics.borrow().snapshot()
    }

    /// A client closed its connection mid-body: nothing was forwarded.
    pub fn client_gone(&self) {
        if let Some(routes) = self.routes.borrow().as_ref() {
            let empty: Rc<str> = Rc::from("");
            self.metrics.borrow_mut().count(&routes.table.service, &empty, &empty, 499);
        }
    }

    fn draw(&self) -> f64 {
        let mut x = self.state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn new_id(&self) -> Vec<u8> {
        let count = self.ids.next.get();
        self.ids.next.set(count + 1);
        format!("{:016x}{:016x}", self.ids.prefix, count).into_bytes()
    }

    pub async fn answer(self: &Rc<Self>, request: Request) -> Answer {
        let routes = self.routes.borrow().clone().expect("serving starts with a table");
        if routes.delegated || own_path(&request.path) {
            return self.delegated(&routes.headers, request).await;
        }
        self.route(routes, request).await
    }

    /// Decide, forward (and mirror), answer.
    async fn route(self: &Rc<Self>, routes: Rc<Routes>, request: Request) -> Answer {
        let started = Instant::now();
        let table = &routes.table;
        let request_id = match &request.given_id {
            Some(given) if is_valid_request_id(given) => given.clone(),
            _ => self.new_id(),
        };
        let view = View {
            headers: request
                .headers
                .iter()
                .filter(|(name, _)| table.reads_headers.iter().any(|read| read.as_bytes() == name))
                .map(|(name, value)| (latin1(name), latin1(value)))
                .collect(),
            path: &request.path,
            now: if table.reads_clock { Timestamp::now() } else { Timestamp::UNIX_EPOCH },
        };
        let mut decision = table.decide(&view, self.draw(), self.draw());
        let mut policy = table.policies.get(&decision.version).cloned().unwrap_or_default();
        let mut refused = None;
        if let Some(spec) = &policy.breaker {
            let (target, refusal) = self.admit(&decision.version, spec, table);
            if let Some(refusal) = refusal {
                refused = self.refused(table, &decision.version, &refusal, target.is_some());
            }
            if let Some(target) = target.filter(|target| *target != decision.version) {
                policy = table.policies.get(&target).cloned().unwrap_or_default();
                decision.version = target;
            }
        }
        let rules = &routes.headers;
        let mut forwarded = kept_headers(&request.headers, &[&rules.hop_by_hop, &rules.own]);
        forwarded.push((b"x-request-id".to_vec(), request_id.clone()));
        if let Some(shadow) = &decision.shadow {
            self.send_shadow(&routes, shadow, &request, &forwarded);
        }
        forwarded.push((ROUTE.to_vec(), decision.version.as_bytes().to_vec()));
        let version = &decision.version;
        let answer = match (refused, &policy.breaker) {
            (Some(refused), _) => refused,
            (None, None) => {
                self.forward(&routes, version, &policy, &request, &forwarded, &request_id).await
            }
            (None, Some(spec)) => {
                // counted in the version's requests in flight and failures in a row
                self.breakers.borrow_mut().started(version);
                let answer = self
                    .forward(&routes, version, &policy, &request, &forwarded, &request_id)
                    .await;
                self.breakers.borrow_mut().finished(version, spec, answer.status);
                answer
            }
        };
        self.answered(table, &request, request_id, &decision, answer, started)
    }

    /// Where a request decided for `version` goes: `version` (no refusal), its fallback
    /// (with `version`'s refusal), or nowhere (None, and the refusal). A fallback
    /// switched off (`active: false`) takes nothing.
    fn admit(
        &self,
        version: &Rc<str>,
        spec: &Spec,
        table: &Table,
    ) -> (Option<Rc<str>>, Option<Refusal>) {
        let mut breakers = self.breakers.borrow_mut();
        let Some(refusal) = breakers.refusal(version, spec) else {
            return (Some(version.clone()), None);
        };
        let Some(fallback) = spec.fallback.as_deref() else {
            return (None, Some(refusal));
        };
        if table.switched_off.iter().any(|off| off == fallback) {
            return (None, Some(refusal));
        }
        let its_own = table.policies.get(fallback).and_then(|policy| policy.breaker.as_ref());
        if its_own.is_some_and(|own| breakers.refusal(fallback, own).is_some()) {
            return (None, Some(refusal));
        }
        (Some(Rc::from(fallback)), Some(refusal))
    }

    /// Count a circuit breaker's refusal; the 503 to answer unless a fallback takes
    /// the request.
    fn refused(
        &self,
        table: &Table,
        version: &Rc<str>,
        refusal: &Refusal,
        taken: bool,
    ) -> Option<Answer> {
        self.metrics.borrow_mut().breaker_refusal(&table.service, version, refusal.reason);
        if taken {
            return None;
        }
        let state = if refusal.reason == "full" { "full" } else { "ejected after failing" };
        let after = refusal.retry_after;
        let mut answer =
            Answer::error(503, &format!("version {version} is {state}; retry in {after} s"));
        answer.headers.push((b"retry-after".to_vec(), after.to_string().into_bytes()));
        Some(answer)
    }

    /// `answer` with the request id and the version, remembered, logged and counted.
    fn answered(
        &self,
        table: &Table,
        request: &Request,
        request_id: Vec<u8>,
        decision: &Decision,
        mut answer: Answer,
        started: Instant,
    ) -> Answer {
        let version = decision.version.as_bytes().to_vec();
        let elapsed = started.elapsed().as_secs_f64();
        let id = String::from_utf8(request_id.clone()).unwrap_or_default();
        answer.headers.push((b"x-request-id".to_vec(), request_id));
        answer.headers.push((b"x-mlpatterns-version".to_vec(), version));
        self.metrics.borrow_mut().answered(
            &table.service,
            &decision.route,
            &decision.version,
            answer.status,
            elapsed,
            elapsed - answer.upstream_seconds,
        );
        if self.settings.log_decisions {
            let timestamp = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
            self.control.record(&DecisionRecord {
                request_id: &id,
                service: &table.service,
                route: &decision.route,
                version: &decision.version,
                shadow: decision.shadow.as_deref(),
                phase: &table.phase,
                status: answer.status,
                latency_seconds: (elapsed * 1e6).round() / 1e6,
                timestamp: &timestamp,
            });
        }
        if self.settings.access_log {
            self.control.access(&json!({
                "request_id": id, "method": request.method, "path": request.path,
                "status": answer.status, "seconds": elapsed, "version": &*decision.version,
            }));
        }
        self.recent.borrow_mut().add(id, decision.version.clone());
        answer
    }

    pub fn shadows_in_flight(&self) -> usize {
        self.shadows.get()
    }
}
