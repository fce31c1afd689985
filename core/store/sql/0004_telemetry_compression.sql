-- lz4 instead of pglz for the jsonb the worker writes for every execution (context snapshots,
-- step inputs and outputs), where the server has it (PostgreSQL 14+ built with lz4, as Debian's
-- is). Late snapshots of a workflow exceed the 2 kB at which PostgreSQL compresses a row, and
-- pglz cost about 8% of PostgreSQL's CPU per execution in bench/e2e; lz4 does the same job for
-- much less. Only new values are affected; the column types stay REX's. EXECUTE defers parsing,
-- so servers without SET COMPRESSION (or without lz4) keep pglz with a notice.
DO $rex$
BEGIN
    EXECUTE 'ALTER TABLE execution_context_snapshots ALTER COLUMN state SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE execution_steps ALTER COLUMN input SET COMPRESSION lz4, '
        'ALTER COLUMN output SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'rex-worker: lz4 column compression not available (%), keeping pglz', SQLERRM;
END
$rex$;
