-- Token revocation: every access token carries the generation its user had when it was issued;
-- log-out increments it, and the auth guard refuses tokens of an older generation. MySQL holds
-- the truth (Redis `{p}:user:{id}:tgen` is a cache raised to it), so a rebuilt Redis cannot
-- bring revoked tokens back. Existing users start at 0, like the tokens they hold.
ALTER TABLE users ADD COLUMN token_gen BIGINT NOT NULL DEFAULT 0;
