//! A bare forwarder on hyper, one thread (tokio's current-thread runtime), for the
//! gateway benchmark: what a compiled data plane built on it costs before it does
//! any of the gateway's own work.
//!
//!     hyper-forwarder LISTEN_HOST:PORT UPSTREAM_HOST:PORT

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use tokio::net::TcpListener;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: hyper-forwarder LISTEN_HOST:PORT UPSTREAM_HOST:PORT");
        std::process::exit(2);
    }
    let listen: SocketAddr = args[1].parse().expect("LISTEN_HOST:PORT");
    let upstream = args[2].clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build_http();
        let listener = TcpListener::bind(listen).await.expect("the listening port");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let forward = service_fn(move |mut request: Request<Incoming>| {
                    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
                    let uri: Uri = format!("http://{upstream}{target}").parse().expect("a URI");
                    *request.uri_mut() = uri;
                    client.request(request)
                });
                let io = TokioIo::new(stream);
                let _ = http1::Builder::new().serve_connection(io, forward).await;
            });
        }
    });
}
