//! The gateway's calls to upstreams: a version's answer with its retries, a shadow
//! copy sent on its own, and what goes to the Python data plane behind this one.

use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Gateway, Routes, CLIENT, ROUTE};
use crate::messages::{
    kept_headers, request_head, upstream_target, Answer, HeaderRules, Headers, Request,
};
use crate::table::Policy;
use crate::upstream::UpstreamError;

impl Gateway {
    /// The upstream's answer, tried at most 1 + the version's retries times (faults
    /// only, never refusals), or the gateway's own 503 or 504.
    pub(super) async fn forward(
        &self,
        routes: &Routes,
        version: &str,
        policy: &Policy,
        request: &Request,
        headers: &Headers,
        request_id: &[u8],
    ) -> Answer {
        let timeout = policy.timeout_seconds.unwrap_or(self.settings.default_timeout.as_secs_f64());
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
            match pool.request(&data, Duration::from_secs_f64(timeout), head_only).await {
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
                        self.control
                            .warn(&id, &format!("version {version} answered {}", upstream.status));
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

    pub(super) fn send_shadow(
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
        let mut data =
            request_head(&request.method, &target, host.as_bytes(), &marked, request.body.len());
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

    /// The Python gateway's answer: its own paths, and the tables it executes itself.
    pub(super) async fn delegated(&self, rules: &HeaderRules, request: Request) -> Answer {
        let client = [String::from_utf8_lossy(CLIENT).into_owned()];
        let mut headers = kept_headers(&request.headers, &[&rules.hop_by_hop, &client]);
        headers.push((CLIENT.to_vec(), request.client.to_string().into_bytes()));
        let target = upstream_target(b"", &request.raw_path, &request.query);
        let mut data =
            request_head(&request.method, &target, b"localhost", &headers, request.body.len());
        data.extend_from_slice(&request.body);
        let head_only = request.method == "HEAD";
        match self.delegate.request(&data, self.settings.default_timeout, head_only).await {
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
                self.control
                    .warn("", &format!("the gateway's control process did not answer: {why}"));
                Answer::error(503, "the gateway's control process is unavailable; retry shortly")
            }
        }
    }
}

/// The upstream's answer headers as the client gets them: the model server's own
/// version renamed, since `x-mlpatterns-version` names the ModelService's version.
fn passed_on(headers: &Headers, rules: &HeaderRules) -> Headers {
    let renamed = headers
        .iter()
        .filter(|(name, _)| name == b"x-mlpatterns-version")
        .map(|(_, value)| (b"x-mlpatterns-model-version".to_vec(), value.clone()));
    let mut kept = kept_headers(headers, &[&rules.hop_by_hop, &rules.passed_over, &rules.own]);
    kept.extend(renamed);
    kept
}

fn declared_length(headers: &Headers) -> usize {
    headers
        .iter()
        .find(|(n, _)| n == b"content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0)
}
