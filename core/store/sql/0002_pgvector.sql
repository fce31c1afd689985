-- knowledge_chunks.embedding_vector vector(1536), only where the pgvector extension is available
-- (and may be created by this role); without it the worker keeps using the jsonb embedding.
DO $rex$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector;
            ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS embedding_vector vector(1536);
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'rex-worker: pgvector not usable (%), embedding_vector not added', SQLERRM;
        END;
    END IF;
END
$rex$;
