-- Orders, their lines, payments and hourly sales. Rows are written by the settlement worker
-- from order events; `version` makes those writes order-independent (a later state never
-- loses to an earlier event processed late by another worker).
CREATE TABLE orders (
    id             CHAR(36)    NOT NULL,
    user_id        BIGINT      NOT NULL,
    status         VARCHAR(16) NOT NULL,
    subtotal       BIGINT      NOT NULL,
    discount       BIGINT      NOT NULL,
    total          BIGINT      NOT NULL,
    user_coupon_id BIGINT      NULL,
    created_at     DATETIME(6) NOT NULL,
    expires_at     DATETIME(6) NOT NULL,
    paid_at        DATETIME(6) NULL,
    ended_at       DATETIME(6) NULL,
    payment_id     CHAR(36)    NULL,
    version        INT         NOT NULL,
    PRIMARY KEY (id),
    KEY ix_orders_user_created (user_id, created_at, id),
    KEY ix_orders_status (status),
    CONSTRAINT ck_orders_money CHECK (discount >= 0 AND total >= 0 AND total = subtotal - discount)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE order_lines (
    order_id   CHAR(36)     NOT NULL,
    product_id BIGINT       NOT NULL,
    name       VARCHAR(200) NOT NULL,
    unit_price BIGINT       NOT NULL,
    quantity   INT          NOT NULL,
    line_total BIGINT       NOT NULL,
    PRIMARY KEY (order_id, product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE payments (
    id       CHAR(36)    NOT NULL,
    order_id CHAR(36)    NOT NULL,
    user_id  BIGINT      NOT NULL,
    amount   BIGINT      NOT NULL,
    paid_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_payments_order (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Units sold per product per UTC hour: the source for rebuilding popularity rankings.
CREATE TABLE sales_hourly (
    product_id BIGINT      NOT NULL,
    hour_start DATETIME(6) NOT NULL,
    quantity   BIGINT      NOT NULL,
    PRIMARY KEY (product_id, hour_start)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

ALTER TABLE user_coupons ADD COLUMN version INT NOT NULL DEFAULT 1;
