-- The one currency of a file's transactions ('' when they differ), recorded
-- at submission so that listing transmissions reads no transaction rows.
ALTER TABLE transmissions ADD COLUMN currency TEXT NOT NULL DEFAULT '';
UPDATE transmissions SET currency = COALESCE((
    SELECT CASE WHEN MIN(x.currency) = MAX(x.currency) THEN MIN(x.currency) ELSE '' END
    FROM transmission_txs x WHERE x.transmission_id = transmissions.id), '');
