-- The audit log's text keys compare byte by byte (collation "C") instead of by the database's
-- locale: every insert compares message ids in the primary key and in the three (…, message_id)
-- indexes, and locale-aware comparison (strcoll) was a large share of PostgreSQL's work per
-- stored event. Ids and event types are identifiers, not prose: byte order is the right order
-- for them, and keyset pages stay consistent because the indexes and the cursor comparison
-- both use the column's collation. The indexes are rebuilt.
ALTER TABLE audit_log
    ALTER COLUMN message_id TYPE text COLLATE "C",
    ALTER COLUMN type TYPE text COLLATE "C";
