-- First-come coupon campaigns and the coupons issued from them. The unique (coupon, user) key
-- is the final fence behind Redis's one-per-user decision.
CREATE TABLE coupons (
    id               BIGINT       NOT NULL AUTO_INCREMENT,
    name             VARCHAR(100) NOT NULL,
    discount_type    VARCHAR(8)   NOT NULL,
    discount_value   BIGINT       NOT NULL,
    max_discount     BIGINT       NULL,
    min_order_amount BIGINT       NOT NULL DEFAULT 0,
    total_quantity   BIGINT       NOT NULL,
    issue_starts_at  DATETIME(6)  NOT NULL,
    issue_ends_at    DATETIME(6)  NOT NULL,
    valid_days       INT          NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT ck_coupons_type CHECK (discount_type IN ('FIXED', 'PERCENT')),
    CONSTRAINT ck_coupons_quantity CHECK (total_quantity > 0),
    CONSTRAINT ck_coupons_window CHECK (issue_ends_at > issue_starts_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE user_coupons (
    id         BIGINT      NOT NULL,
    coupon_id  BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    status     VARCHAR(16) NOT NULL,
    issued_at  DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    order_id   VARCHAR(36) NULL,
    used_at    DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_user_coupons_coupon_user (coupon_id, user_id),
    KEY ix_user_coupons_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
