//! A database per test, copied from a template that is migrated once: each test starts from the
//! real schema, in parallel with the others, for the cost of a `CREATE DATABASE … TEMPLATE`.
//!
//! The caller runs the migrations (a closure given the template's URL), so this crate needs
//! nothing of the server's. For tests: a failure panics, naming what failed.

use std::future::Future;
use std::path::Path;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::database::{ServerUrl, connect, drop_database};

/// Every template's name starts so; one whose migrations changed is dropped by the next build.
const TEMPLATE_PREFIX: &str = "nexus_tpl_";

/// Serialises building and copying templates across processes (any number, the same on every
/// run).
const TEMPLATE_LOCK: i64 = 7470401;

/// Test databases are kept for inspection after a failing run and dropped by a run this much
/// later (their names carry their creation time).
const STALE_AFTER_SECONDS: i64 = 3 * 3600;

/// A migrated database that test databases are copied from.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
}

impl Template {
    /// The template of the migrations in `dir`: named after every file's name and content, so a
    /// changed migration gets a new template.
    pub fn of_migrations(dir: &Path) -> Self {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        files.sort();
        let mut hash = Sha256::new();
        for file in files {
            hash.update(file.file_name().expect("a file name").as_encoded_bytes());
            hash.update(std::fs::read(&file).expect("a migration"));
        }
        Self {
            name: format!("{TEMPLATE_PREFIX}{}", &hex::encode(hash.finalize())[..16]),
        }
    }

    /// A new database on the server of `base`, copied from this template; its URL. The first
    /// copy on a server builds the template: `migrate` gets the URL of an empty database to
    /// migrate.
    pub async fn copy<F, Fut>(&self, base: &str, migrate: F) -> String
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let server = server_of(base);
        let admin = admin(&server).await;
        let template = &self.name;
        // One process builds the template; the lock also serialises copies, which PostgreSQL
        // refuses while another session is attached to the template.
        admin
            .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
            .await
            .expect("take the template lock");
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[template])
            .await
            .expect("look the template up")
            .is_some();
        if !exists {
            drop_superseded_templates(&admin).await;
            let building = format!("{template}_build");
            execute(&admin, &format!("DROP DATABASE IF EXISTS {building}")).await;
            execute(&admin, &format!("CREATE DATABASE {building}")).await;
            migrate(server.database(&building))
                .await
                .expect("migrations apply to a fresh database");
            // TimescaleDB's scheduler attaches to every database; lock it out before copying.
            for statement in [
                format!("ALTER DATABASE {building} ALLOW_CONNECTIONS false"),
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{building}'"
                ),
                format!("ALTER DATABASE {building} RENAME TO {template}"),
            ] {
                execute(&admin, &statement).await;
            }
        }
        drop_stale_databases(&admin).await;
        let name = test_database_name();
        execute(
            &admin,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        admin
            .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
            .await
            .expect("release the template lock");
        server.database(&name)
    }
}

/// A new database with nothing in it on the server of `base` (extensions available), for
/// migrating step by step; its URL.
pub async fn empty_database(base: &str) -> String {
    let server = server_of(base);
    let name = test_database_name();
    execute(&admin(&server).await, &format!("CREATE DATABASE {name}")).await;
    server.database(&name)
}

/// Drops the test database at `url`; a failure is left for a later run's clean-up.
pub async fn drop_test_database(url: &str) {
    let (server, name) = ServerUrl::split(url).expect("a test database's URL");
    let _ = drop_database(&server, &name).await;
}

/// `test_<unix time>_<random>`: unique, and old ones are known by their name.
fn test_database_name() -> String {
    format!(
        "test_{}_{}",
        Utc::now().timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn server_of(base: &str) -> ServerUrl {
    ServerUrl::parse(base).expect("the database URL names a database")
}

async fn admin(server: &ServerUrl) -> Client {
    connect(&server.database("postgres"))
        .await
        .expect("connect to the test server")
}

async fn execute(admin: &Client, statement: &str) {
    admin
        .batch_execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Test databases are kept for inspection after a run and dropped by a run hours later.
async fn drop_stale_databases(admin: &Client) {
    let cutoff = Utc::now().timestamp() - STALE_AFTER_SECONDS;
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'test\\_%'",
            &[],
        )
        .await
        .expect("list the test databases");
    for row in rows {
        let name: String = row.get(0);
        let created = name.split('_').nth(1).and_then(|t| t.parse::<i64>().ok());
        if created.is_none_or(|created| created < cutoff) {
            drop_if_exists(admin, &name).await;
        }
    }
}

/// Templates of earlier migrations: each is a whole database that no test copies any more.
async fn drop_superseded_templates(admin: &Client) {
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{}%", TEMPLATE_PREFIX.replace('_', "\\_"))],
        )
        .await
        .expect("list the templates");
    for row in rows {
        drop_if_exists(admin, row.get(0)).await;
    }
}

/// A database that is in use is dropped all the same; one that cannot be is left for later.
async fn drop_if_exists(admin: &Client, name: &str) {
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
