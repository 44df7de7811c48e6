/**
 * SQLite schema of the snapshot metadata store (one database per snapshotter root).
 *
 * Mirrors containerd's bolt layout (snapshots/storage/bolt.go) relationally: one row per
 * snapshot keyed by its key/name, a monotonic never-reused integer ID (AUTOINCREMENT, like
 * bolt's NextSequence), the parent by ID (so commit renames need no child fix-up), usage
 * stored at commit, labels in their own table. Timestamps are nanoseconds since the epoch.
 */
export const SCHEMA_VERSION = 1;

export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS snapshots (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  key       TEXT NOT NULL UNIQUE,
  kind      INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
  parent_id INTEGER REFERENCES snapshots(id),
  created   INTEGER NOT NULL,
  updated   INTEGER NOT NULL,
  size      INTEGER NOT NULL DEFAULT 0,
  inodes    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);

CREATE TABLE IF NOT EXISTS labels (
  snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  value       TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, name)
) WITHOUT ROWID;
`;
