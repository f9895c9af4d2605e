//! The client is generated from the committed document by a macro, which Cargo does not know
//! reads it: without this, a changed document would leave a stale client in the build cache.

fn main() {
    println!("cargo:rerun-if-changed=../../openapi/openapi.yaml");
}
