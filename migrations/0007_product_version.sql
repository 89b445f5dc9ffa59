-- A product's name and price are cached in Redis for pricing orders on the hot path. Every
-- change of them bumps `version`, and the cache keeps only the highest version it was given,
-- so two admins changing one product at once, or a lazy load racing a change, can never leave
-- an older price in the cache.
ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
