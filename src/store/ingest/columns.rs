//! The batch as the ingest statements take it: one array per column (the shape `unnest` takes),
//! and the container metric rows in PostgreSQL's binary `COPY` format.
//!
//! Each table's columns are declared once, by `columns!`: the field names are the SQL column
//! names, their Rust types give the PostgreSQL types, and the statements in
//! `statements.rs` receive their column and parameter lists from that declaration through
//! [`expand`], so the `COPY` and the `INSERT` of the metric rows cannot disagree.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use nexus_contract::Labels;
use tokio_postgres::types::{IsNull, Json, ToSql, Type};

use super::Submission;
use super::plan::{ContainerPlan, ContainerRow};
use crate::error::Error;

/// The PostgreSQL type a column of this Rust type is sent as.
pub(super) trait SqlType {
    const TYPE: Type;
}

impl SqlType for i32 {
    const TYPE: Type = Type::INT4;
}
impl SqlType for i64 {
    const TYPE: Type = Type::INT8;
}
impl SqlType for bool {
    const TYPE: Type = Type::BOOL;
}
impl SqlType for f32 {
    const TYPE: Type = Type::FLOAT4;
}
impl SqlType for f64 {
    const TYPE: Type = Type::FLOAT8;
}
impl SqlType for DateTime<Utc> {
    const TYPE: Type = Type::TIMESTAMPTZ;
}
impl SqlType for &str {
    const TYPE: Type = Type::TEXT;
}
impl<T> SqlType for Json<T> {
    const TYPE: Type = Type::JSONB;
}
impl<T: SqlType> SqlType for Option<T> {
    const TYPE: Type = T::TYPE;
}

/// A batch's rows of one table, held as one array per column.
pub(super) trait Columns {
    /// The column names, in the statement's parameter order.
    const NAMES: &'static [&'static str];
    /// The columns' types, in the same order.
    const TYPES: &'static [Type];
    /// One parameter (an array) per column, in order.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)>;
    /// How many rows are held.
    fn row_count(&self) -> usize;
    /// Appends row `i` in the binary `COPY` format: the column count, then each value.
    fn encode_row(&self, i: usize, out: &mut BytesMut) -> Result<(), Error>;
}

/// Declares a table's columns once: the struct of arrays, a struct for one row (so building a
/// row names every column), and [`Columns`] in the order written.
macro_rules! columns {
    (
        $(#[$doc:meta])*
        $name:ident $(<$lt:lifetime>)?, one row: $row:ident {
            $($(#[$field_doc:meta])* $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Default)]
        pub(super) struct $name$(<$lt>)? {
            rows: usize,
            $($(#[$field_doc])* $field: Vec<$ty>,)+
        }

        #[doc = concat!("One row of [`", stringify!($name), "`].")]
        pub(super) struct $row$(<$lt>)? {
            $($field: $ty,)+
        }

        impl$(<$lt>)? $name$(<$lt>)? {
            fn push(&mut self, row: $row$(<$lt>)?) {
                self.rows += 1;
                $(self.$field.push(row.$field);)+
            }
        }

        impl$(<$lt>)? Columns for $name$(<$lt>)? {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];
            const TYPES: &'static [Type] = &[$(<$ty as SqlType>::TYPE),+];

            fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
                vec![$(&self.$field),+]
            }

            fn row_count(&self) -> usize {
                self.rows
            }

            fn encode_row(&self, i: usize, out: &mut BytesMut) -> Result<(), Error> {
                out.put_i16(Self::NAMES.len() as i16);
                $(encode_value(&self.$field[i], out)?;)+
                Ok(())
            }
        }
    };
}

columns! {
    /// The batch's snapshots, for the host statement ([`super::statements::INGEST_HOSTS_SQL`]).
    HostColumns<'a>, one row: HostRow {
        host_id: i64,
        token_id: i64,
        recorded_at: DateTime<Utc>,
        cpu_percent: Option<f64>,
        memory_used_mb: Option<i64>,
        memory_total_mb: Option<i64>,
        disk_used_gb: Option<i64>,
        disk_total_gb: Option<i64>,
        network_rx_bytes: Option<i64>,
        network_tx_bytes: Option<i64>,
        load_average: Option<f64>,
        cpu_count: Option<i32>,
        facts_memory_total_mb: Option<i64>,
        facts_disk_total_gb: Option<i64>,
        os: Option<&'a str>,
        docker_version: Option<&'a str>,
    }
}

columns! {
    /// The descriptions of the containers to look up, for the description statement
    /// ([`super::statements::INGEST_CONTAINERS_SQL`]), borrowing the strings.
    DescriptionColumns<'a>, one row: DescriptionRow {
        host_id: i64,
        recorded_at: DateTime<Utc>,
        container_id: &'a str,
        name: &'a str,
        image: &'a str,
        image_tag: Option<&'a str>,
        status: Option<&'a str>,
        state: Option<&'a str>,
        health_status: Option<&'a str>,
        /// Serialised straight from the payload into `jsonb`, no intermediate JSON value.
        ports: Json<&'a [String]>,
        labels: Json<&'a Labels>,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
        restart_count: Option<i64>,
        exit_code: Option<i64>,
        oom_killed: Option<bool>,
    }
}

columns! {
    /// One row of `container_metric_snapshots` per container, for its `COPY`
    /// ([`super::statements::COPY_CONTAINER_METRICS_SQL`]) and its `INSERT`
    /// ([`super::statements::INGEST_CONTAINER_METRICS_SQL`]).
    MetricColumns, one row: MetricRow {
        container_id: i64,
        host_id: i64,
        recorded_at: DateTime<Utc>,
        /// `real` in the table: agents send two decimals, which 32 bits keep.
        cpu_percent: Option<f32>,
        memory_usage_mb: Option<i64>,
        memory_limit_mb: Option<i64>,
        network_rx_bytes: Option<i64>,
        network_tx_bytes: Option<i64>,
        block_read_bytes: Option<i64>,
        block_write_bytes: Option<i64>,
    }
}

impl<'a> HostColumns<'a> {
    pub(super) fn of(batch: &'a [Submission]) -> Self {
        let mut columns = Self::default();
        for submission in batch {
            let snapshot = &submission.snapshot;
            let metrics = &snapshot.payload.host.metrics;
            let facts = snapshot.payload.host.facts.as_ref();
            columns.push(HostRow {
                host_id: submission.host_id,
                token_id: submission.token_id,
                recorded_at: snapshot.recorded_at,
                cpu_percent: metrics.cpu_percent,
                memory_used_mb: metrics.memory_used_mb,
                memory_total_mb: metrics.memory_total_mb,
                disk_used_gb: metrics.disk_used_gb,
                disk_total_gb: metrics.disk_total_gb,
                network_rx_bytes: metrics.network_rx_bytes,
                network_tx_bytes: metrics.network_tx_bytes,
                load_average: metrics.load_average,
                cpu_count: facts.and_then(|f| f.cpu_count),
                facts_memory_total_mb: facts.and_then(|f| f.memory_total_mb),
                facts_disk_total_gb: facts.and_then(|f| f.disk_total_gb),
                os: facts.and_then(|f| f.os.as_deref()),
                docker_version: facts.and_then(|f| f.docker_version.as_deref()),
            });
        }
        columns
    }
}

static NO_LABELS: Labels = Labels::new();

impl<'a> DescriptionColumns<'a> {
    pub(super) fn of(rows: impl Iterator<Item = &'a ContainerRow<'a>>) -> Self {
        let mut columns = Self::default();
        for row in rows {
            let container = row.container;
            columns.push(DescriptionRow {
                host_id: row.host_id,
                recorded_at: row.recorded_at,
                container_id: &container.container_id,
                name: &container.name,
                image: &container.image,
                image_tag: container.image_tag.as_deref(),
                status: container.status.as_deref(),
                state: container.state.as_deref(),
                health_status: container.health_status.as_deref(),
                ports: Json(container.ports.as_deref().unwrap_or_default()),
                labels: Json(container.labels.as_ref().unwrap_or(&NO_LABELS)),
                started_at: container.started_at.map(|t| t.to_utc()),
                finished_at: container.finished_at.map(|t| t.to_utc()),
                restart_count: container.restart_count,
                exit_code: container.exit_code,
                oom_killed: container.oom_killed,
            });
        }
        columns
    }
}

impl MetricColumns {
    /// One row per container of `plan`, each of which must have its row id by now.
    pub(super) fn of(plan: &ContainerPlan<'_>) -> Result<Self, Error> {
        let mut columns = Self::default();
        for row in plan.rows() {
            let container_id = row.state.id().ok_or_else(|| {
                Error::Internal(anyhow::anyhow!(
                    "container {} of host {} has no id after its upsert",
                    row.container.container_id,
                    row.host_id
                ))
            })?;
            let metrics = row.container.metrics.as_ref();
            columns.push(MetricRow {
                container_id,
                host_id: row.host_id,
                recorded_at: row.recorded_at,
                cpu_percent: metrics.and_then(|m| m.cpu_percent).map(|v| v as f32),
                memory_usage_mb: metrics.and_then(|m| m.memory_usage_mb),
                memory_limit_mb: metrics.and_then(|m| m.memory_limit_mb),
                network_rx_bytes: metrics.and_then(|m| m.network_rx_bytes),
                network_tx_bytes: metrics.and_then(|m| m.network_tx_bytes),
                block_read_bytes: metrics.and_then(|m| m.block_read_bytes),
                block_write_bytes: metrics.and_then(|m| m.block_write_bytes),
            });
        }
        Ok(columns)
    }

    /// How many rows each host has.
    pub(super) fn rows_per_host(&self) -> HashMap<i64, i64> {
        let mut per_host = HashMap::new();
        for host_id in &self.host_id {
            *per_host.entry(*host_id).or_insert(0) += 1;
        }
        per_host
    }
}

/// `template` with `{columns}` replaced by the column names of `C` and `{arrays}` by one array
/// parameter per column (`$1::int8[], $2::timestamptz[], …`), both in `C`'s order.
pub(super) fn expand<C: Columns>(template: &str) -> String {
    assert!(
        template.contains("{columns}"),
        "an ingest statement takes its columns from their `columns!` declaration"
    );
    let arrays: Vec<String> = C::TYPES
        .iter()
        .enumerate()
        .map(|(i, column_type)| format!("${}::{}[]", i + 1, column_type.name()))
        .collect();
    template
        .replace("{columns}", &C::NAMES.join(", "))
        .replace("{arrays}", &arrays.join(", "))
}

/// PostgreSQL's binary `COPY` header: the signature, the flags and the header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer that ends binary `COPY` data: a column count of -1.
const COPY_TRAILER: i16 = -1;

/// The rows in PostgreSQL's binary `COPY` format, whole. Sent as one message, they reach the
/// database at once: written row by row (`BinaryCopyInWriter` sends every 4 KB), the database
/// waited for the next piece while this process's threads parsed other bodies.
pub(super) fn binary_copy_data<C: Columns>(columns: &C) -> Result<Bytes, Error> {
    // About what a row takes: its 2-byte column count, then each value (8 bytes, mostly) after
    // its 4-byte length.
    let row_bytes = 2 + C::NAMES.len() * (4 + 8);
    let rows = columns.row_count();
    let mut data = BytesMut::with_capacity(COPY_HEADER.len() + rows * row_bytes + 2);
    data.put_slice(COPY_HEADER);
    for i in 0..rows {
        columns.encode_row(i, &mut data)?;
    }
    data.put_i16(COPY_TRAILER);
    Ok(data.freeze())
}

/// Appends `value` after its 4-byte length, or a length of -1 for NULL.
fn encode_value<T: ToSql + SqlType>(value: &T, out: &mut BytesMut) -> Result<(), Error> {
    let length_at = out.len();
    out.put_i32(0); // the length, known once the value is written
    let length = match value
        .to_sql_checked(&T::TYPE, out)
        .map_err(|error| Error::Internal(anyhow::anyhow!(error)))?
    {
        IsNull::Yes => -1,
        IsNull::No => i32::try_from(out.len() - length_at - 4)
            .map_err(|error| Error::Internal(error.into()))?,
    };
    out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tokio_postgres::types::FromSql;

    use super::*;
    use crate::store::ingest::statements;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn metric_row(container_id: i64, recorded_at: DateTime<Utc>) -> MetricRow {
        MetricRow {
            container_id,
            host_id: 3,
            recorded_at,
            cpu_percent: None,
            memory_usage_mb: None,
            memory_limit_mb: None,
            network_rx_bytes: None,
            network_tx_bytes: None,
            block_read_bytes: None,
            block_write_bytes: None,
        }
    }

    fn metrics(rows: impl IntoIterator<Item = MetricRow>) -> MetricColumns {
        let mut columns = MetricColumns::default();
        rows.into_iter().for_each(|row| columns.push(row));
        columns
    }

    /// The rows of binary `COPY` data, each value's bytes or `None` for NULL, read as
    /// PostgreSQL reads them; panics where the format is broken.
    fn decode(data: &[u8]) -> Vec<Vec<Option<&[u8]>>> {
        let (header, mut rest) = data.split_at(19);
        assert_eq!(&header[..11], b"PGCOPY\n\xff\r\n\0", "signature");
        assert_eq!(&header[11..], [0; 8], "flags, header extension length");
        let mut take = |n: usize| {
            let (taken, left) = rest.split_at(n);
            rest = left;
            taken
        };
        let mut rows = Vec::new();
        loop {
            let fields = i16::from_be_bytes(take(2).try_into().unwrap());
            if fields == -1 {
                break;
            }
            let row = (0..fields)
                .map(|_| match i32::from_be_bytes(take(4).try_into().unwrap()) {
                    -1 => None,
                    length => Some(take(usize::try_from(length).unwrap())),
                })
                .collect();
            rows.push(row);
        }
        assert!(rest.is_empty(), "nothing after the trailer");
        rows
    }

    fn read<'a, T: FromSql<'a> + SqlType>(value: Option<&'a [u8]>) -> Option<T> {
        value.map(|bytes| T::from_sql(&T::TYPE, bytes).unwrap())
    }

    #[test]
    fn a_metric_row_is_encoded_byte_for_byte_as_postgresqls_binary_copy_format() {
        let mut row = metric_row(7, at("2000-01-01T00:00:01Z"));
        row.cpu_percent = Some(12.5);
        row.memory_usage_mb = Some(64);
        let data = binary_copy_data(&metrics([row])).unwrap();

        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend([0; 8]); // flags, header extension length
        expected.extend(10_i16.to_be_bytes()); // columns
        for value in [7_i64, 3, 1_000_000] {
            // container id, host id, recorded_at in µs since 2000-01-01 UTC
            expected.extend(8_i32.to_be_bytes());
            expected.extend(value.to_be_bytes());
        }
        expected.extend(4_i32.to_be_bytes());
        expected.extend(12.5_f32.to_be_bytes());
        expected.extend(8_i32.to_be_bytes());
        expected.extend(64_i64.to_be_bytes());
        for _null in 0..5 {
            expected.extend((-1_i32).to_be_bytes());
        }
        expected.extend((-1_i16).to_be_bytes()); // trailer
        assert_eq!(data.as_ref(), expected);
    }

    #[test]
    fn edge_values_and_nulls_decode_back_with_postgresqls_own_decoders() {
        let mut extremes = metric_row(i64::MAX, at("9999-12-31T23:59:59.999999Z"));
        extremes.host_id = i64::MIN;
        extremes.cpu_percent = Some(f32::MAX);
        extremes.memory_usage_mb = Some(0);
        extremes.memory_limit_mb = Some(-1);
        extremes.network_rx_bytes = Some(i64::MAX);
        extremes.network_tx_bytes = Some(i64::MIN);
        extremes.block_read_bytes = Some(1 << 40);
        extremes.block_write_bytes = Some(0);
        let mut small = metric_row(0, at("1970-01-01T00:00:00Z")); // before PostgreSQL's epoch
        small.cpu_percent = Some(f32::MIN_POSITIVE);
        let mut negative_zero = metric_row(1, at("2000-01-01T00:00:00Z"));
        negative_zero.cpu_percent = Some(-0.0);
        let columns = metrics([
            extremes,
            small,
            negative_zero,
            metric_row(2, at("2024-05-01T12:00:00Z")),
        ]);
        let data = binary_copy_data(&columns).unwrap();

        let rows = decode(&data);
        assert_eq!(rows.len(), 4);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), MetricColumns::NAMES.len());
            assert_eq!(read(row[0]), Some(columns.container_id[i]));
            assert_eq!(read(row[1]), Some(columns.host_id[i]));
            assert_eq!(read(row[2]), Some(columns.recorded_at[i]));
            let cpu: Option<f32> = read(row[3]);
            assert_eq!(
                cpu.map(f32::to_bits),
                columns.cpu_percent[i].map(f32::to_bits),
                "bit for bit, the sign of zero included"
            );
            let counters = [
                &columns.memory_usage_mb,
                &columns.memory_limit_mb,
                &columns.network_rx_bytes,
                &columns.network_tx_bytes,
                &columns.block_read_bytes,
                &columns.block_write_bytes,
            ];
            for (value, column) in row[4..].iter().zip(counters) {
                assert_eq!(read::<i64>(*value), column[i], "NULL stays NULL");
            }
        }
    }

    #[test]
    fn an_instant_keeps_microseconds_as_postgresql_does_and_drops_finer_digits() {
        let recorded_at = Utc.timestamp_opt(1_714_564_800, 123_456_789).unwrap();
        let data = binary_copy_data(&metrics([metric_row(1, recorded_at)])).unwrap();
        let rows = decode(&data);
        assert_eq!(
            read::<DateTime<Utc>>(rows[0][2]),
            Some(Utc.timestamp_opt(1_714_564_800, 123_456_000).unwrap())
        );
    }

    #[test]
    fn no_rows_encode_as_the_header_and_the_trailer_alone() {
        let data = binary_copy_data(&metrics([])).unwrap();
        assert!(decode(&data).is_empty());
        assert_eq!(data.len(), 19 + 2);
    }

    #[test]
    fn the_copy_and_the_insert_of_metric_rows_write_the_encoders_columns_in_its_order() {
        let columns = "container_id, host_id, recorded_at, cpu_percent, memory_usage_mb, \
                       memory_limit_mb, network_rx_bytes, network_tx_bytes, block_read_bytes, \
                       block_write_bytes";
        let into = format!("container_metric_snapshots ({columns})");
        let copy = expand::<MetricColumns>(statements::COPY_CONTAINER_METRICS_SQL);
        let insert = expand::<MetricColumns>(statements::INGEST_CONTAINER_METRICS_SQL);
        assert!(copy.contains(&into), "{copy}");
        assert!(insert.contains(&into), "{insert}");
        assert!(
            insert.contains(
                "unnest($1::int8[], $2::int8[], $3::timestamptz[], $4::float4[], $5::int8[], \
                 $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])"
            ),
            "{insert}"
        );
    }

    #[test]
    fn the_host_statements_rate_limit_parameter_follows_its_arrays() {
        let hosts = expand::<HostColumns>(statements::INGEST_HOSTS_SQL);
        assert_eq!(HostColumns::NAMES.len(), 16);
        assert!(
            hosts.contains("$16::text[]) AS i (host_id, token_id,"),
            "{hosts}"
        );
        assert!(hosts.contains("[1:$17]"), "the rate limit is $17: {hosts}");
    }
}
