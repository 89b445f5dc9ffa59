-- The settlement side: every event applied exactly once (applied_events is the fence), a
-- double-entry ledger (each event posts entries whose amounts sum to zero) and the accounts
-- it materialises. Entries are append-only.
CREATE TABLE applied_events (
    event_id    CHAR(36)    NOT NULL,
    stream_id   VARCHAR(40) NOT NULL,
    event_type  VARCHAR(40) NOT NULL,
    occurred_at DATETIME(6) NOT NULL,
    applied_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (event_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Account codes: 'user:<id>' (a shopper's prepaid balance), 'cash_in' (money entering the
-- system; goes negative by what was charged), 'revenue' (paid orders).
CREATE TABLE accounts (
    code       VARCHAR(64) NOT NULL,
    balance    BIGINT      NOT NULL DEFAULT 0,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (code)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE ledger_entries (
    id         BIGINT      NOT NULL AUTO_INCREMENT,
    event_id   CHAR(36)    NOT NULL,
    account    VARCHAR(64) NOT NULL,
    amount     BIGINT      NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY ix_ledger_event (event_id),
    KEY ix_ledger_account (account)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE wallet_charges (
    event_id      CHAR(36)    NOT NULL,
    user_id       BIGINT      NOT NULL,
    amount        BIGINT      NOT NULL,
    balance_after BIGINT      NOT NULL,
    charged_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (event_id),
    KEY ix_wallet_charges_user (user_id, charged_at),
    CONSTRAINT ck_wallet_charges_amount CHECK (amount > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
