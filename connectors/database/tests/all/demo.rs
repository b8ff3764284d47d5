//! With no DATABASE_URL the connector serves the embedded SQLite demo database.

use database_connector::{Config, Target};
use switchboard_proto::database::v1::{
    DescribeTableRequest, ListTablesRequest, QueryRequest, TableKind,
};

use crate::support::{Running, js};

#[tokio::test]
async fn the_demo_database_is_created_on_first_start_and_explorable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("data").join("demo.sqlite3");
    let running = Running::start(Config::new(Target::Demo(path.clone()))).await;
    let mut client = running.client().await;

    let tables = client
        .list_tables(ListTablesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(tables.schema, "main");
    let names: Vec<&str> = tables.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "customers",
            "order_items",
            "order_totals",
            "orders",
            "products"
        ]
    );
    let view = &tables.tables[2];
    assert_eq!(view.kind(), TableKind::View);
    assert_eq!(tables.tables[3].row_estimate, Some(120));

    let orders = client
        .describe_table(DescribeTableRequest {
            table: "orders".to_owned(),
            schema: None,
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(orders.foreign_keys[0].referenced_table, "customers");

    let top = client
        .query(QueryRequest {
            sql: "SELECT c.country, count(*) AS orders, round(sum(t.total), 2) AS revenue \
                  FROM order_totals t JOIN customers c ON c.id = t.customer_id \
                  GROUP BY c.country ORDER BY revenue DESC LIMIT 3"
                .to_owned(),
            ..Default::default()
        })
        .await
        .expect("query")
        .into_inner();
    assert_eq!(top.row_count, 3);
    let revenue = js(&top.rows[0].values[2]);
    assert!(revenue.as_f64().is_some_and(|r| r > 0.0), "{revenue}");
    running.stop().await.expect("clean shutdown");

    // A second start reuses the file instead of recreating it.
    let before = std::fs::metadata(&path)
        .expect("demo file")
        .modified()
        .expect("mtime");
    let again = Running::start(Config::new(Target::Demo(path.clone()))).await;
    let mut client = again.client().await;
    client
        .query(QueryRequest {
            sql: "SELECT count(*) FROM customers".to_owned(),
            ..Default::default()
        })
        .await
        .expect("query");
    again.stop().await.expect("clean shutdown");
    assert_eq!(
        std::fs::metadata(&path)
            .expect("demo file")
            .modified()
            .expect("mtime"),
        before
    );
}
