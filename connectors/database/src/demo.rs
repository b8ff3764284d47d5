//! The embedded demo database: what the connector serves when no `DATABASE_URL`
//! is set, so it works with nothing installed.
//!
//! A small shop in SQLite: customers, products, orders and their items, with
//! foreign keys, indexes, a view and a few hundred rows generated
//! deterministically. It is written to a temporary file next to the target and
//! renamed into place, so a half-written demo database is never served.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::error::Error;

const SCHEMA: &str = r#"
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    country     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    price       NUMERIC NOT NULL CHECK (price >= 0),
    in_stock    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    ordered_at  TEXT NOT NULL
);
CREATE INDEX orders_customer_id ON orders(customer_id);
CREATE INDEX orders_ordered_at ON orders(ordered_at);
CREATE TABLE order_items (
    order_id    INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    product_id  INTEGER NOT NULL REFERENCES products(id),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_price  NUMERIC NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE VIEW order_totals AS
    SELECT o.id AS order_id, o.customer_id, o.status, o.ordered_at,
           round(sum(i.quantity * i.unit_price), 2) AS total
    FROM orders o JOIN order_items i ON i.order_id = o.id
    GROUP BY o.id;
"#;

const CUSTOMERS: &[(&str, &str)] = &[
    ("Ada Lovelace", "GB"),
    ("Grace Hopper", "US"),
    ("Alan Turing", "GB"),
    ("Hedy Lamarr", "AT"),
    ("Linus Torvalds", "FI"),
    ("Margaret Hamilton", "US"),
    ("Edsger Dijkstra", "NL"),
    ("Barbara Liskov", "US"),
    ("Niklaus Wirth", "CH"),
    ("Frances Allen", "US"),
    ("Tim Berners-Lee", "GB"),
    ("Katherine Johnson", "US"),
    ("Konrad Zuse", "DE"),
    ("Radia Perlman", "US"),
    ("Bjarne Stroustrup", "DK"),
    ("Sophie Wilson", "GB"),
    ("Guido van Rossum", "NL"),
    ("Yukihiro Matsumoto", "JP"),
    ("Anders Hejlsberg", "DK"),
    ("Karen Spärck Jones", "GB"),
];

const PRODUCTS: &[(&str, &str, &str, &str)] = &[
    ("KB-101", "Mechanical keyboard", "peripherals", "89.90"),
    ("MS-220", "Wireless mouse", "peripherals", "24.50"),
    ("MN-270", "27-inch monitor", "displays", "249.00"),
    ("MN-320", "32-inch 4K monitor", "displays", "429.99"),
    ("HD-050", "USB-C hub", "accessories", "39.00"),
    ("CB-002", "USB-C cable 2 m", "accessories", "9.95"),
    ("HS-400", "Noise-cancelling headset", "audio", "159.00"),
    ("SP-010", "Desk speakers", "audio", "69.00"),
    ("LT-140", "14-inch laptop", "computers", "1199.00"),
    ("LT-160", "16-inch laptop", "computers", "1899.00"),
    ("DK-700", "Standing desk", "furniture", "549.00"),
    ("CH-300", "Ergonomic chair", "furniture", "389.00"),
    ("WC-108", "1080p webcam", "peripherals", "59.90"),
    ("SS-001", "1 TB SSD", "storage", "79.99"),
    ("SS-002", "2 TB SSD", "storage", "139.99"),
];

const STATUSES: &[&str] = &[
    "delivered",
    "delivered",
    "shipped",
    "paid",
    "pending",
    "cancelled",
];

/// Creates the demo database at `path` unless a file is already there.
pub async fn ensure(path: &Path) -> Result<(), Error> {
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(|e| {
            Error::Unavailable(format!(
                "cannot create {} for the demo database: {e}",
                dir.display()
            ))
        })?;
    }
    let temporary = path.with_extension(format!("partial-{}", std::process::id()));
    let _ = tokio::fs::remove_file(&temporary).await;
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(Error::from_sqlx)?
        .filename(&temporary)
        .create_if_missing(true);
    let mut conn = options.connect().await?;
    let mut tx = conn.begin().await?;
    tx.execute(sqlx::raw_sql(SCHEMA)).await?;
    for (i, (name, country)) in CUSTOMERS.iter().enumerate() {
        let email = format!(
            "{}@example.com",
            name.to_lowercase().replace('ä', "a").replace(' ', ".")
        );
        sqlx::query("INSERT INTO customers (id, name, email, country, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(i as i64 + 1)
            .bind(*name)
            .bind(email)
            .bind(*country)
            .bind(format!("2024-{:02}-{:02}T09:{:02}:00Z", i % 12 + 1, i % 27 + 1, (i * 7) % 60))
            .execute(&mut *tx)
            .await?;
    }
    for (i, (sku, name, category, price)) in PRODUCTS.iter().enumerate() {
        sqlx::query("INSERT INTO products (id, sku, name, category, price, in_stock) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(i as i64 + 1)
            .bind(*sku)
            .bind(*name)
            .bind(*category)
            .bind(*price)
            .bind(((i * 37) % 120) as i64)
            .execute(&mut *tx)
            .await?;
    }
    // 120 orders over 2025, each with one to three distinct products.
    for order in 1..=120i64 {
        let customer = (order * 7) % CUSTOMERS.len() as i64 + 1;
        let status = STATUSES[(order as usize * 5) % STATUSES.len()];
        let ordered_at = format!(
            "2025-{:02}-{:02}T{:02}:{:02}:00Z",
            (order - 1) / 10 + 1,
            (order * 3) % 28 + 1,
            8 + order % 12,
            (order * 13) % 60
        );
        sqlx::query(
            "INSERT INTO orders (id, customer_id, status, ordered_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(order)
        .bind(customer)
        .bind(status)
        .bind(ordered_at)
        .execute(&mut *tx)
        .await?;
        let items = order % 3 + 1;
        for item in 0..items {
            let product = ((order * 11 + item * 5) % PRODUCTS.len() as i64) as usize;
            sqlx::query("INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (?1, ?2, ?3, ?4)")
                .bind(order)
                .bind(product as i64 + 1)
                .bind((order + item) % 4 + 1)
                .bind(PRODUCTS[product].3)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    conn.close().await?;
    tokio::fs::rename(&temporary, path).await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot move the demo database into {}: {e}",
            path.display()
        ))
    })?;
    tracing::info!(path = %path.display(), "demo database created");
    Ok(())
}
