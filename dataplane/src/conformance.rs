//! `mlpatterns-dataplane decide`: the decisions of `table.rs` for requests given as JSON
//! lines on stdin, one JSON line each on stdout, so that the conformance cases
//! (`tests/conformance/decisions.yaml`) run against this executor as against Python's.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use jiff::Timestamp;
use serde::Deserialize;

use crate::table::{RequestView, Table, WireTable};

#[derive(Deserialize)]
struct Case {
    table: WireTable,
    headers: HashMap<String, String>,
    path: String,
    now: String,
    draw: f64,
    shadow_draw: f64,
}

struct View {
    headers: HashMap<String, String>,
    path: String,
    now: Timestamp,
}

impl RequestView for View {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn now(&self) -> Timestamp {
        self.now
    }
}

fn decide_line(line: &str) -> Result<serde_json::Value, String> {
    let case: Case = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let table = Table::compile(case.table)?;
    let now: Timestamp = case.now.parse().map_err(|e| format!("now: {e}"))?;
    let view = View { headers: case.headers, path: case.path, now };
    let decision = table.decide(&view, case.draw, case.shadow_draw);
    Ok(serde_json::json!([&*decision.route, &*decision.version, decision.shadow.as_deref()]))
}

pub fn run() -> i32 {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return 1 };
        let answer =
            decide_line(&line).unwrap_or_else(|error| serde_json::json!({ "error": error }));
        if writeln!(out, "{answer}").is_err() {
            return 1;
        }
    }
    0
}
