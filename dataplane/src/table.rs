//! The route table as the Python side compiles it (`mlpatterns.routing.wire`), and the
//! decision it makes for one request: the same rules as `routing/decide.py`, checked
//! against the same conformance cases (`tests/conformance/decisions.yaml`).

use std::collections::HashMap;
use std::rc::Rc;

use jiff::{tz::TimeZone, Timestamp};
use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::breaker::Spec;

#[derive(Deserialize)]
pub struct WireMatch {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

#[derive(Deserialize)]
pub struct WireWindow {
    timezone: String,
    minutes: Vec<(u32, u32)>,
}

#[derive(Deserialize)]
pub struct WireRoute {
    name: String,
    headers: Vec<(String, WireMatch)>,
    path: Option<WireMatch>,
    window: Option<WireWindow>,
    destinations: Vec<(String, f64)>,
}

#[derive(Deserialize, Clone, Default)]
pub struct Policy {
    pub timeout_seconds: Option<f64>,
    pub retries: Option<u32>,
    #[serde(default)]
    pub breaker: Option<Spec>,
}

#[derive(Deserialize)]
pub struct WireTable {
    service: String,
    phase: String,
    routes: Vec<WireRoute>,
    mirror: Option<(String, f64)>,
    mirror_path: Option<String>,
    sticky_header: Option<String>,
    #[serde(default)]
    policies: HashMap<String, Policy>,
    #[serde(default)]
    switched_off: Vec<String>,
}

pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StringMatch {
    fn compile(wire: WireMatch) -> Result<Self, String> {
        if let Some(exact) = wire.exact {
            return Ok(Self::Exact(exact));
        }
        if let Some(prefix) = wire.prefix {
            return Ok(Self::Prefix(prefix));
        }
        let pattern = wire.regex.ok_or("a match needs exact, prefix or regex")?;
        // a full match, as RE2's FullMatch: the whole value
        Regex::new(&format!("^(?:{pattern})$"))
            .map(Self::Regex)
            .map_err(|error| format!("regex {pattern:?}: {error}"))
    }

    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (_, None) => false,
            (Self::Exact(exact), Some(v)) => v == exact,
            (Self::Prefix(prefix), Some(v)) => v.starts_with(prefix.as_str()),
            (Self::Regex(regex), Some(v)) => regex.is_match(v),
        }
    }
}

pub struct Window {
    zone: TimeZone,
    minutes: Vec<(u32, u32)>,
}

impl Window {
    pub fn contains(&self, now: Timestamp) -> bool {
        let local = now.to_zoned(self.zone.clone());
        let day = local.weekday().to_monday_zero_offset() as u32; // Monday is 0, as in DAYS
        let minute = day * 1440 + local.hour() as u32 * 60 + local.minute() as u32;
        self.minutes.iter().any(|&(start, end)| start <= minute && minute < end)
    }
}

pub struct Route {
    pub name: Rc<str>,
    headers: Vec<(String, StringMatch)>,
    path: Option<StringMatch>,
    window: Option<Window>,
    destinations: Vec<(Rc<str>, f64)>,
    total_weight: f64,
}

/// What `decide` reads of a request: its headers (lowercase names, the last of
/// repeated ones), its decoded path and the time.
pub trait RequestView {
    fn header(&self, name: &str) -> Option<&str>;
    fn path(&self) -> &str;
    fn now(&self) -> Timestamp;
}

pub struct Table {
    pub service: Rc<str>,
    pub phase: Rc<str>,
    pub routes: Vec<Route>,
    mirror: Option<(Rc<str>, f64)>,
    mirror_path: Option<String>,
    sticky_header: Option<String>,
    pub policies: HashMap<Rc<str>, Policy>,
    pub switched_off: Vec<String>, // `active: false`: no traffic of any kind
    pub reads_headers: Vec<String>, // the header names a decision looks at
    pub reads_clock: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub route: Rc<str>,
    pub version: Rc<str>,
    pub shadow: Option<Rc<str>>,
}

/// A user's fixed place in [0, 1): where their sticky value hashes to.
pub fn sticky_point(value: &str) -> f64 {
    let digest = Sha256::digest(value.as_bytes());
    let first = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    first as f64 / 18_446_744_073_709_551_616.0 // 2^64
}

impl Table {
    pub fn compile(wire: WireTable) -> Result<Self, String> {
        let mut names: HashMap<String, Rc<str>> = HashMap::new();
        let mut name =
            |text: String| names.entry(text.clone()).or_insert_with(|| text.into()).clone();
        let mut routes = Vec::with_capacity(wire.routes.len());
        for route in wire.routes {
            let headers = route
                .headers
                .into_iter()
                .map(|(header, m)| StringMatch::compile(m).map(|m| (header, m)))
                .collect::<Result<Vec<_>, _>>()?;
            let path = route.path.map(StringMatch::compile).transpose()?;
            let window = match route.window {
                None => None,
                Some(w) => Some(Window {
                    zone: jiff::tz::db()
                        .get(&w.timezone)
                        .map_err(|error| format!("timezone {}: {error}", w.timezone))?,
                    minutes: w.minutes,
                }),
            };
            let destinations: Vec<(Rc<str>, f64)> =
                route.destinations.into_iter().map(|(v, w)| (name(v), w)).collect();
            if destinations.is_empty() {
                return Err(format!("route {} has no destination", route.name));
            }
            let total_weight = destinations.iter().map(|d| d.1).sum();
            routes.push(Route {
                name: route.name.into(),
                headers,
                path,
                window,
                destinations,
                total_weight,
            });
        }
        if routes.is_empty() {
            return Err("the table has no route".into());
        }
        let mut reads_headers: Vec<String> = wire.sticky_header.iter().cloned().collect();
        for route in &routes {
            reads_headers.extend(route.headers.iter().map(|(name, _)| name.clone()));
        }
        reads_headers.sort();
        reads_headers.dedup();
        let reads_clock = routes.iter().any(|r| r.window.is_some());
        Ok(Self {
            service: wire.service.into(),
            phase: wire.phase.into(),
            routes,
            mirror: wire.mirror.map(|(v, p)| (name(v), p)),
            mirror_path: wire.mirror_path,
            sticky_header: wire.sticky_header,
            policies: wire.policies.into_iter().map(|(v, p)| (name(v), p)).collect(),
            switched_off: wire.switched_off,
            reads_headers,
            reads_clock,
        })
    }

    fn matches(route: &Route, request: &impl RequestView) -> bool {
        route.headers.iter().all(|(name, m)| m.matches(request.header(name)))
            && route.path.as_ref().is_none_or(|m| m.matches(Some(request.path())))
            && route.window.as_ref().is_none_or(|w| w.contains(request.now()))
    }

    /// `draw` and `shadow_draw` uniform in [0, 1).
    pub fn decide(&self, request: &impl RequestView, draw: f64, shadow_draw: f64) -> Decision {
        let last = self.routes.len() - 1; // the default, last, matches everything
        let route = self.routes[..last]
            .iter()
            .find(|route| Self::matches(route, request))
            .unwrap_or(&self.routes[last]);
        let version = if route.destinations.len() == 1 {
            route.destinations[0].0.clone()
        } else {
            let sticky = self
                .sticky_header
                .as_deref()
                .and_then(|h| request.header(h))
                .filter(|v| !v.is_empty());
            let point = sticky.map_or(draw, sticky_point);
            pick(&route.destinations, route.total_weight, point)
        };
        let mut shadow = None;
        if let Some((mirrored, percent)) = &self.mirror {
            let on_path = self.mirror_path.as_deref().is_none_or(|p| p == request.path());
            if on_path && *mirrored != version && shadow_draw * 100.0 < *percent {
                shadow = Some(mirrored.clone());
            }
        }
        Decision { route: route.name.clone(), version, shadow }
    }
}

/// The version whose share of the total weight holds `point` (in [0, 1)), in table order.
fn pick(destinations: &[(Rc<str>, f64)], total: f64, point: f64) -> Rc<str> {
    let mut position = point * total;
    for (version, weight) in destinations {
        if position < *weight {
            return version.clone();
        }
        position -= weight;
    }
    destinations[destinations.len() - 1].0.clone()
}
