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
use crate::control::Control;
use crate::messages::{
    is_valid_request_id, kept_headers, latin1, request_head, upstream_target, Answer, HeaderRules,
    Headers, Request,
};
use crate::metrics::Metrics;
use crate::recent::RecentVersions;
use crate::table::{Decision, Policy, RequestView, Table, WireTable};
use crate::upstream::{Origin, Pool, UpstreamError};

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
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
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

/// The upstream's answer headers as the client gets them: the model server's own
/// version renamed, since `x-mlpatterns-version` names the ModelService's version.
fn passed_on(headers: &Headers, rules: &HeaderRules) -> Headers {
    let renamed = headers
        .iter()
        .filter(|(name, _)| name == b"x-mlpatterns-version")
        .map(|(_, value)| (b"x-mlpatterns-model-version".to_vec(), value.clone()));
    let mut kept = kept_headers(
        headers,
        &[&rules.hop_by_hop, &rules.passed_over, &rules.own],
    );
    kept.extend(renamed);
    kept
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
            ids: Ids {
                prefix: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                next: Cell::new(0),
            },
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
        *self.routes.borrow_mut() = Some(Rc::new(Routes {
            table,
            pools,
            delegated,
            headers,
        }));
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
            self.metrics
                .borrow_mut()
                .count(&routes.table.service, &empty, &empty, 499);
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
        let routes = self
            .routes
            .borrow()
            .clone()
            .expect("serving starts with a table");
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
                .filter(|(name, _)| {
                    table
                        .reads_headers
                        .iter()
                        .any(|read| read.as_bytes() == name)
                })
                .map(|(name, value)| (latin1(name), latin1(value)))
                .collect(),
            path: &request.path,
            now: if table.reads_clock {
                Timestamp::now()
            } else {
                Timestamp::UNIX_EPOCH
            },
        };
        let mut decision = table.decide(&view, self.draw(), self.draw());
        let mut policy = table
            .policies
            .get(&decision.version)
            .cloned()
            .unwrap_or_default();
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
                self.forward(&routes, version, &policy, &request, &forwarded, &request_id)
                    .await
            }
            (None, Some(spec)) => {
                // counted in the version's requests in flight and failures in a row
                self.breakers.borrow_mut().started(version);
                let answer = self
                    .forward(&routes, version, &policy, &request, &forwarded, &request_id)
                    .await;
                self.breakers
                    .borrow_mut()
                    .finished(version, spec, answer.status);
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
        let its_own = table
            .policies
            .get(fallback)
            .and_then(|policy| policy.breaker.as_ref());
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
        self.metrics
            .borrow_mut()
            .breaker_refusal(&table.service, version, refusal.reason);
        if taken {
            return None;
        }
        let state = if refusal.reason == "full" {
            "full"
        } else {
            "ejected after failing"
        };
        let after = refusal.retry_after;
        let mut answer = Answer::error(
            503,
            &format!("version {version} is {state}; retry in {after} s"),
        );
        answer
            .headers
            .push((b"retry-after".to_vec(), after.to_string().into_bytes()));
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
        answer
            .headers
            .push((b"x-mlpatterns-version".to_vec(), version));
        self.metrics.borrow_mut().answered(
            &table.service,
            &decision.route,
            &decision.version,
            answer.status,
            elapsed,
            elapsed - answer.upstream_seconds,
        );
        if self.settings.log_decisions {
            let timestamp = Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
                .to_string();
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

    /// The upstream's answer, tried at most 1 + the version's retries times (faults
    /// only, never refusals), or the gateway's own 503 or 504.
    async fn forward(
        &self,
        routes: &Routes,
        version: &str,
        policy: &Policy,
        request: &Request,
        headers: &Headers,
        request_id: &[u8],
    ) -> Answer {
        let timeout = policy
            .timeout_seconds
            .unwrap_or(self.settings.default_timeout.as_secs_f64());
        let attempts = 1 + policy.retries.unwrap_or(0);
        let pool = &routes.pools[version];
        let origin = &pool.origin;
        let target = upstream_target(&origin.prefix, &request.raw_path, &request.query);
        let mut data = request_head(
            &request.method,
            &target,
            &origin.host_header,
            headers,
            request.body.len(),
        );
        data.extend_from_slice(&request.body);
        let head_only = request.method == "HEAD";
        let started = Instant::now();
        let id = String::from_utf8_lossy(request_id);
        let mut answer = Answer::error(503, "no attempt was made");
        for attempt in 0..attempts {
            let last = attempt + 1 == attempts;
            match pool
                .request(&data, Duration::from_secs_f64(timeout), head_only)
                .await
            {
                Err(UpstreamError::Timeout) if !last => continue,
                Err(UpstreamError::Timeout) => {
                    let message = format!("version {version} did not answer in {timeout} s");
                    self.control.warn(&id, &message);
                    answer = Answer::error(504, &message);
                }
                Err(UpstreamError::Failed(_)) if !last => continue,
                Err(UpstreamError::Failed(why)) => {
                    // where and why for the log; the client learns neither address
                    self.control.warn(
                        &id,
                        &format!("version {version} at {} is unavailable: {why}", origin.url),
                    );
                    answer = Answer::error(503, &format!("version {version} is unavailable"));
                }
                Ok(upstream) if upstream.status >= 500 && !last => continue,
                Ok(upstream) => {
                    if upstream.status >= 500 {
                        self.control.warn(
                            &id,
                            &format!("version {version} answered {}", upstream.status),
                        );
                    }
                    let length = head_only.then(|| declared_length(&upstream.headers));
                    let headers = passed_on(&upstream.headers, &routes.headers);
                    answer = Answer::new(upstream.status, headers, upstream.body);
                    answer.length = length;
                }
            }
            break;
        }
        answer.upstream_seconds = started.elapsed().as_secs_f64();
        answer
    }

    fn send_shadow(
        self: &Rc<Self>,
        routes: &Rc<Routes>,
        shadow: &Rc<str>,
        request: &Request,
        headers: &Headers,
    ) {
        let service = &routes.table.service;
        if self.shadows.get() >= self.settings.shadow_limit {
            self.metrics.borrow_mut().mirror_drop(service);
            return;
        }
        if !self.shadow_breaker.borrow_mut().allow(shadow) {
            self.metrics.borrow_mut().shadow_skipped(service, shadow);
            return;
        }
        let pool = routes.pools[shadow].clone();
        let mut marked = headers.clone();
        marked.push((ROUTE.to_vec(), shadow.as_bytes().to_vec()));
        let host = format!("{service}-shadow"); // as Envoy marks mirrored requests
        let target = upstream_target(&pool.origin.prefix, &request.raw_path, &request.query);
        let mut data = request_head(
            &request.method,
            &target,
            host.as_bytes(),
            &marked,
            request.body.len(),
        );
        data.extend_from_slice(&request.body);
        let head_only = request.method == "HEAD";
        let (gateway, service, shadow) = (self.clone(), service.clone(), shadow.clone());
        self.shadows.set(self.shadows.get() + 1);
        tokio::task::spawn_local(async move {
            let timeout = gateway.settings.default_timeout;
            let failed = match pool.request(&data, timeout, head_only).await {
                Ok(answer) => answer.status >= 500, // a 4xx is the request's fault
                Err(_) => true,
            };
            gateway.shadow_breaker.borrow_mut().record(&shadow, !failed);
            if failed {
                gateway.metrics.borrow_mut().shadow_error(&service, &shadow);
            }
            gateway.shadows.set(gateway.shadows.get() - 1);
        });
    }

    pub fn shadows_in_flight(&self) -> usize {
        self.shadows.get()
    }

    /// The Python gateway's answer: its own paths, and the tables it executes itself.
    async fn delegated(&self, rules: &HeaderRules, request: Request) -> Answer {
        let client = [String::from_utf8_lossy(CLIENT).into_owned()];
        let mut headers = kept_headers(&request.headers, &[&rules.hop_by_hop, &client]);
        headers.push((CLIENT.to_vec(), request.client.to_string().into_bytes()));
        let target = upstream_target(b"", &request.raw_path, &request.query);
        let mut data = request_head(
            &request.method,
            &target,
            b"localhost",
            &headers,
            request.body.len(),
        );
        data.extend_from_slice(&request.body);
        let head_only = request.method == "HEAD";
        match self
            .delegate
            .request(&data, self.settings.default_timeout, head_only)
            .await
        {
            Ok(upstream) => {
                let length = head_only.then(|| declared_length(&upstream.headers));
                let dropped = [&rules.hop_by_hop[..], &rules.passed_over[..]];
                let headers = kept_headers(&upstream.headers, &dropped);
                let mut answer = Answer::new(upstream.status, headers, upstream.body);
                answer.length = length;
                answer
            }
            Err(error) => {
                let why = match error {
                    UpstreamError::Timeout => "timed out".to_string(),
                    UpstreamError::Failed(why) => why,
                };
                self.control.warn(
                    "",
                    &format!("the gateway's control process did not answer: {why}"),
                );
                Answer::error(
                    503,
                    "the gateway's control process is unavailable; retry shortly",
                )
            }
        }
    }
}

fn declared_length(headers: &Headers) -> usize {
    headers
        .iter()
        .find(|(n, _)| n == b"content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0)
}
