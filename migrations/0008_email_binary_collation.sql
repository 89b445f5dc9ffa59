-- One spelling per account: compare e-mails byte for byte. Under utf8mb4_unicode_ci a
-- zero-width space, accents or full-width letters made several strings match one account, so
-- a login limiter keyed by the typed string could be bypassed. Stored e-mails are already
-- trimmed and ASCII-lower-cased, so every existing account keeps working; rows that were
-- distinct under the old collation are distinct under the binary one, so the unique key holds.
ALTER TABLE users
    MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
