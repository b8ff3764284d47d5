-- A small demo shop for the database connector under docker compose: the same
-- shape as the connector's embedded SQLite demo (customers, products, orders,
-- order items, a view), with deterministic rows. PostgreSQL runs this file once,
-- on the first start of an empty data volume; delete the volume
-- (`docker compose down -v`) to load it again, or point DATABASE_URL elsewhere.

CREATE TABLE customers (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL
);
COMMENT ON TABLE customers IS 'People who bought something; one row per customer.';

CREATE TABLE products (
    id          integer PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    in_stock    integer NOT NULL DEFAULT 0
);
COMMENT ON COLUMN products.price IS 'Unit price in EUR.';

CREATE TABLE orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    ordered_at  timestamptz NOT NULL
);
CREATE INDEX orders_customer_id ON orders(customer_id);
CREATE INDEX orders_ordered_at ON orders(ordered_at);

CREATE TABLE order_items (
    order_id    integer NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    product_id  integer NOT NULL REFERENCES products(id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE VIEW order_totals AS
    SELECT o.id AS order_id, o.customer_id, o.status, o.ordered_at,
           round(sum(i.quantity * i.unit_price), 2) AS total
    FROM orders o JOIN order_items i ON i.order_id = o.id
    GROUP BY o.id;

INSERT INTO customers (id, name, email, country, created_at)
SELECT n, name, lower(replace(name, ' ', '.')) || '@example.com', country,
       timestamptz '2024-01-01 09:00:00+00' + (n * interval '9 days')
FROM (VALUES
    (1, 'Ada Lovelace', 'GB'), (2, 'Grace Hopper', 'US'), (3, 'Alan Turing', 'GB'),
    (4, 'Hedy Lamarr', 'AT'), (5, 'Linus Torvalds', 'FI'), (6, 'Margaret Hamilton', 'US'),
    (7, 'Edsger Dijkstra', 'NL'), (8, 'Barbara Liskov', 'US'), (9, 'Niklaus Wirth', 'CH'),
    (10, 'Frances Allen', 'US'), (11, 'Tim Berners-Lee', 'GB'), (12, 'Katherine Johnson', 'US'),
    (13, 'Konrad Zuse', 'DE'), (14, 'Radia Perlman', 'US'), (15, 'Bjarne Stroustrup', 'DK'),
    (16, 'Sophie Wilson', 'GB'), (17, 'Guido van Rossum', 'NL'), (18, 'Yukihiro Matsumoto', 'JP'),
    (19, 'Anders Hejlsberg', 'DK'), (20, 'Karen Spärck Jones', 'GB')
) AS c(n, name, country);

INSERT INTO products (id, sku, name, category, price, in_stock) VALUES
    (1, 'KB-101', 'Mechanical keyboard', 'peripherals', 89.90, 40),
    (2, 'MS-220', 'Wireless mouse', 'peripherals', 24.50, 120),
    (3, 'MN-270', '27-inch monitor', 'displays', 249.00, 15),
    (4, 'MN-320', '32-inch 4K monitor', 'displays', 429.99, 7),
    (5, 'HD-050', 'USB-C hub', 'accessories', 39.00, 80),
    (6, 'CB-002', 'USB-C cable 2 m', 'accessories', 9.95, 300),
    (7, 'HS-400', 'Noise-cancelling headset', 'audio', 159.00, 25),
    (8, 'SP-010', 'Desk speakers', 'audio', 69.00, 0),
    (9, 'LT-140', '14-inch laptop', 'computers', 1199.00, 9),
    (10, 'LT-160', '16-inch laptop', 'computers', 1899.00, 4),
    (11, 'DK-700', 'Standing desk', 'furniture', 549.00, 6),
    (12, 'CH-300', 'Ergonomic chair', 'furniture', 389.00, 11),
    (13, 'WC-108', '1080p webcam', 'peripherals', 59.90, 33),
    (14, 'SS-001', '1 TB SSD', 'storage', 79.99, 60),
    (15, 'SS-002', '2 TB SSD', 'storage', 139.99, 28);

-- 200 orders spread over customers, statuses and 2024-2025.
INSERT INTO orders (id, customer_id, status, ordered_at)
SELECT n,
       1 + (n * 7) % 20,
       (ARRAY['delivered', 'delivered', 'shipped', 'paid', 'pending', 'cancelled'])[1 + n % 6],
       timestamptz '2024-02-01 10:00:00+00' + (n * interval '3 days 5 hours')
FROM generate_series(1, 200) AS n;

-- One to three distinct products per order, at the list price.
INSERT INTO order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, p.id, 1 + (o.id + k) % 3, p.price
FROM orders o
CROSS JOIN generate_series(0, 2) AS k
JOIN products p ON p.id = 1 + (o.id * 5 + k * 4) % 15
WHERE k <= o.id % 3;
