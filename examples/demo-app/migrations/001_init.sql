-- 1.0: the visit log.
CREATE TABLE visits (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    visited_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX visits_visited_at ON visits (visited_at);
