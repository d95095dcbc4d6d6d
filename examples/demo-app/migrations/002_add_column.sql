-- 2.0: remember which browser made each visit. Nullable, so 1.0 keeps working after a rollback.
ALTER TABLE visits ADD COLUMN user_agent TEXT;
