-- The settlement worker applies events in any order across workers, so a payment for units
-- added by a restock may reach MySQL before the restock does: `sold` may briefly exceed
-- `stock_total`. Redis decides oversell (never below zero there); the audit checks
-- sold <= stock_total once the stream is drained.
ALTER TABLE products DROP CONSTRAINT ck_products_stock;
ALTER TABLE products ADD CONSTRAINT ck_products_stock_nonnegative
    CHECK (stock_total >= 0 AND sold >= 0);
