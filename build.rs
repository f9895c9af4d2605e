// Migrations are embedded by `refinery::embed_migrations!("sql")`, which cannot tell cargo that a
// new file in `sql/` needs a rebuild; this does.
fn main() {
    println!("cargo:rerun-if-changed=sql");
}
