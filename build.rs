// The migrations are embedded with `sqlx::migrate!`: a new or changed file in migrations/
// must rebuild the crate (cargo does not see the macro read the folder).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
