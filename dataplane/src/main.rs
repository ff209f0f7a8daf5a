//! mlpatterns' compiled data plane. `serve` executes the route table that the Python
//! gateway (`mlpatterns serve gateway --data-plane compiled`) compiles and sends
//! over its control socket; `decide` runs the decision conformance cases.

mod conformance;
mod table;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("decide") => conformance::run(),
        _ => {
            eprintln!("usage: mlpatterns-dataplane decide | serve OPTIONS");
            2
        }
    };
    std::process::exit(code);
}
