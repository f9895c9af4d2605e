//! PostgreSQL databases by URL: a server's URL for another of its databases, a connection, a
//! drop. The tests and the bench each make databases of their own on a shared cluster.

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls};

/// A database URL split around its database name: the server before it, the query after it.
#[derive(Debug, Clone)]
pub struct ServerUrl {
    prefix: String,
    query: String,
}

impl ServerUrl {
    /// The server of `url`, a URL that names a database.
    pub fn parse(url: &str) -> Result<Self> {
        Self::split(url).map(|(server, _)| server)
    }

    /// The server of `url` and the name of the database it names.
    pub fn split(url: &str) -> Result<(Self, String)> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url, String::new()),
        };
        let slash = base
            .rfind('/')
            .filter(|&i| i > "postgres://".len())
            .context("the database URL has no database name")?;
        let server = Self {
            prefix: base[..slash].to_owned(),
            query,
        };
        Ok((server, base[slash + 1..].to_owned()))
    }

    /// The URL of the database `name` on this server.
    pub fn database(&self, name: &str) -> String {
        format!("{}/{name}{}", self.prefix, self.query)
    }
}

/// A client of the database at `url`; its connection runs on a task of its own.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("Failed to connect to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Drops the database `name` of `server`, whoever is still connected to it.
pub async fn drop_database(server: &ServerUrl, name: &str) -> Result<()> {
    let admin = connect(&server.database("postgres")).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("Failed to drop database {name}"))
}

#[cfg(test)]
mod tests {
    use super::ServerUrl;

    #[test]
    fn database_urls_keep_the_server_and_the_query() {
        let url =
            ServerUrl::parse("postgres://postgres@127.0.0.1:54329/nexus?sslmode=disable").unwrap();
        assert_eq!(
            url.database("bench_1"),
            "postgres://postgres@127.0.0.1:54329/bench_1?sslmode=disable"
        );
        assert!(ServerUrl::parse("postgres://host").is_err());
    }

    #[test]
    fn a_split_url_names_its_database() {
        let (server, name) = ServerUrl::split("postgres://127.0.0.1:5432/test_1_ab").unwrap();
        assert_eq!(name, "test_1_ab");
        assert_eq!(
            server.database("postgres"),
            "postgres://127.0.0.1:5432/postgres"
        );
    }
}
