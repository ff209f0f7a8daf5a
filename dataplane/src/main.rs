//! mlpatterns' compiled data plane. `serve` executes the route table that the Python
//! gateway (`mlpatterns serve gateway --data-plane compiled`) compiles and sends over
//! its control socket, on one thread; `decide` runs the decision conformance cases.

mod breaker;
mod chunked;
mod conformance;
mod control;
mod gateway;
mod head;
mod messages;
mod metrics;
mod recent;
mod server;

mod table;
mod upstream;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep, sleep_until, Instant};

use crate::control::Control;
use crate::gateway::{Gateway, Settings};
use crate::server::{Limits, Plane};
use crate::upstream::Origin;

const SHUTDOWN: Duration = Duration::from_secs(30); // for the requests in progress at a stop

struct Options {
    listen: String,
    control: PathBuf,
    delegate: PathBuf,
    limits: Limits,
    settings: Settings,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut given = std::collections::HashMap::new();
    let mut flags = std::collections::HashSet::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let name = arg.strip_prefix("--").ok_or_else(|| format!("unexpected argument {arg}"))?;
        if matches!(name, "log-decisions" | "access-log") {
            flags.insert(name.to_string());
        } else {
            let value = rest.next().ok_or_else(|| format!("--{name} needs a value"))?;
            given.insert(name.to_string(), value.clone());
        }
    }
    let text = |name: &str| given.get(name).cloned().ok_or_else(|| format!("--{name} is required"));
    let number = |name: &str| -> Result<f64, String> {
        text(name)?.parse::<f64>().map_err(|_| format!("--{name} must be a number"))
    };
    let seconds = |name: &str| number(name).map(Duration::from_secs_f64);
    let count = |name: &str| number(name).map(|n| n as usize);
    Ok(Options {
        listen: text("listen")?,
        control: text("control")?.into(),
        delegate: text("delegate")?.into(),
        limits: Limits {
            max_body: count("max-body-bytes")?,
            max_head: count("max-header-bytes")?,
            max_headers: count("max-headers")?,
            header_timeout: seconds("header-timeout")?,
            body_timeout: seconds("body-timeout")?,
            idle_timeout: seconds("idle-timeout")?,
            max_connections: count("max-connections")?,
            drain: seconds("drain-seconds")?,
        },
        settings: Settings {
            shadow_limit: count("shadow-limit")?,
            default_timeout: seconds("default-timeout")?,
            remembered: count("remembered")?,
            log_decisions: flags.contains("log-decisions"),
            access_log: flags.contains("access-log"),
        },
    })
}

async fn run(options: Options) -> Result<(), String> {
    let socket = UnixStream::connect(&options.control).await.map_err(|e| {
        format!("cannot reach the control socket {}: {e}", options.control.display())
    })?;
    let (reader, writer) = socket.into_split();
    let control = Rc::new(Control::default());
    let gateway =
        Rc::new(Gateway::new(options.settings, Origin::unix(options.delegate), control.clone()));
    tokio::task::spawn_local(control::write_loop(control.clone(), writer));
    let mut lines = BufReader::new(reader).lines();
    while !gateway.ready() {
        match lines.next_line().await {
            Ok(Some(line)) => control::handle(&line, &gateway, &control)?,
            _ => return Err("the control plane closed its socket before sending routes".into()),
        }
    }
    tokio::task::spawn_local(control::read_loop(lines, gateway.clone(), control.clone()));
    let listener = TcpListener::bind(&options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let drain = options.limits.drain;
    let plane = Rc::new(Plane::new(gateway.clone(), options.limits));
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut drained = Instant::now();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, peer)) = accepted {
                    tokio::task::spawn_local(server::serve(stream, peer, plane.clone()));
                }
            }
            _ = terminate.recv() => {
                // the first SIGTERM: serve on for `drain`, every answer closing its connection
                if drain.is_zero() || plane.draining.get() {
                    break;
                }
                plane.draining.set(true);
                drained = Instant::now() + drain;
            }
            _ = interrupt.recv() => break,
            () = sleep_until(drained), if plane.draining.get() => break,
        }
    }
    drop(listener);
    plane.draining.set(true);
    plane.stopping.set(true);
    plane.stop.notify_waiters(); // idle connections close
    let deadline = Instant::now() + SHUTDOWN;
    while (plane.busy.get() > 0 || gateway.shadows_in_flight() > 0) && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
    }
    control.finish().await;
    Ok(())
}

fn serve(args: &[String]) -> i32 {
    let options = match parse(args) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("mlpatterns-dataplane: {why}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(why) => {
            eprintln!("mlpatterns-dataplane: {why}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(options)) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("mlpatterns-dataplane: {why}");
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("decide") => conformance::run(),
        Some("serve") => serve(&args[2..]),
        _ => {
            eprintln!("usage: mlpatterns-dataplane decide | serve --listen HOST:PORT --control SOCKET --delegate SOCKET ...");
            2
        }
    };
    std::process::exit(code);
}
