//! The control socket: the Python gateway (the control plane) sends the routes on each
//! change and asks for what it serves itself (the metrics, the version that answered
//! a request id); the data plane sends back, batched off the request path, the
//! decision records, warnings and access lines for the Python side's sinks and log,
//! and the answers. One JSON document per line; a decision record is the line the
//! decision log keeps, as it is; anything else starts with a tag: L a warning, X an
//! access line, A an answer. Records are written at most every FLUSH_INTERVAL, so
//! that the Python side wakes for a batch, not for each request; answers and
//! warnings go at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

use crate::gateway::{Config, DecisionRecord, Gateway};

const MAX_PENDING: usize = 16 << 20; // records beyond this are dropped (and counted)
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Default)]
pub struct Control {
    out: RefCell<Vec<u8>>,
    wake: Notify,  // something is pending
    hurry: Notify, // something that must not wait for the next batch is pending
    flushed: Notify,
    closing: Cell<bool>,
    urgent: Cell<bool>,
    pub dropped: Cell<u64>,
}

impl Control {
    /// One line: `tag` (none for a decision record), `value`; a record is dropped (and
    /// counted) when too much is pending, anything else is never.
    fn push(&self, tag: Option<u8>, value: &impl Serialize, record: bool) {
        let mut out = self.out.borrow_mut();
        if record && out.len() > MAX_PENDING {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        out.extend(tag);
        if serde_json::to_writer(&mut *out, value).is_ok() {
            out.push(b'\n');
        }
        self.wake.notify_one();
        if !record {
            self.urgent.set(true);
            self.hurry.notify_one();
        }
    }

    pub fn record(&self, decision: &DecisionRecord) {
        self.push(None, decision, true);
    }

    pub fn access(&self, line: &Value) {
        self.push(Some(b'X'), line, true);
    }

    /// A warning about one request (`request_id` may be empty), logged by the Python side.
    pub fn warn(&self, request_id: &str, message: &str) {
        let warning = json!({ "request_id": request_id, "message": message });
        self.push(Some(b'L'), &warning, false);
    }

    fn reply(&self, answer: &Value) {
        self.push(Some(b'A'), answer, false);
    }

    /// Write what is pending, then stop writing.
    pub async fn finish(&self) {
        self.closing.set(true);
        self.urgent.set(true);
        self.wake.notify_one();
        self.hurry.notify_one();
        self.flushed.notified().await;
    }
}

/// Writes what `control` gathered: records in batches FLUSH_INTERVAL apart, anything
/// else at once.
pub async fn write_loop(control: Rc<Control>, mut writer: OwnedWriteHalf) {
    loop {
        control.wake.notified().await;
        if !control.urgent.get() {
            tokio::select! {
                () = tokio::time::sleep(FLUSH_INTERVAL) => {}
                () = control.hurry.notified() => {} // something urgent came meanwhile
            }
        }
        control.urgent.set(false);
        let batch = std::mem::take(&mut *control.out.borrow_mut());
        if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
            std::process::exit(1); // the control plane is gone: so is this data plane's reason to run
        }
        if control.closing.get() && control.out.borrow().is_empty() {
            let _ = writer.flush().await;
            control.flushed.notify_one();
            return;
        }
    }
}

/// Apply one line from the control plane; Err only for a first table that does not compile.
pub fn handle(line: &str, gateway: &Gateway, control: &Control) -> Result<(), String> {
    let message: Value = serde_json::from_str(line).map_err(|e| format!("control message: {e}"))?;
    if let Some(config) = message.get("config") {
        let applied = serde_json::from_value::<Config>(config.clone())
            .map_err(|e| e.to_string())
            .and_then(|config| gateway.apply(config));
        if let Err(why) = applied {
            if !gateway.ready() {
                return Err(format!("the route table: {why}"));
            }
            control.warn("", &format!("kept the current routes; the new table is refused: {why}"));
        }
        return Ok(());
    }
    let ask = message.get("ask").cloned().unwrap_or(Value::Null);
    if let Some(id) = message.get("version_of").and_then(Value::as_str) {
        let version = gateway.version_of(id);
        control.reply(&json!({ "ask": ask, "version": version.as_deref() }));
    } else if message.get("metrics").is_some() {
        let mut snapshot = gateway.metrics_snapshot();
        snapshot["records_dropped"] = json!(control.dropped.get());
        control.reply(&json!({ "ask": ask, "metrics": snapshot }));
    }
    Ok(())
}

pub type ControlLines = Lines<BufReader<OwnedReadHalf>>;

/// Read the control plane's lines until it closes the socket, then exit: a data plane
/// whose control plane is gone must not serve on.
pub async fn read_loop(mut lines: ControlLines, gateway: Rc<Gateway>, control: Rc<Control>) {
    while let Ok(Some(line)) = lines.next_line().await {
        if let Err(why) = handle(&line, &gateway, &control) {
            control.warn("", &why);
        }
    }
    if !control.closing.get() {
        eprintln!("mlpatterns-dataplane: the control plane closed its socket; stopping");
        std::process::exit(1);
    }
}
