-- knowledge_corpora.content_version: bumped by a trigger whenever the searchable content of the
-- corpus may change, i.e. a `ready` document is inserted, updated or deleted or a document
-- becomes or stops being `ready` (by rex-worker, REX's backend or anyone else). The worker's
-- process-wide corpus cache keys each cached corpus by it, so a query checks freshness with one
-- indexed read instead of aggregating the corpus's documents (docs/knowledge.md). Chunks are
-- only ever replaced together with a change of their document's row.
ALTER TABLE knowledge_corpora ADD COLUMN IF NOT EXISTS content_version bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION rex_knowledge_corpus_bump() RETURNS trigger
LANGUAGE plpgsql AS $rex$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status = 'ready' THEN
            UPDATE knowledge_corpora SET content_version = content_version + 1
                WHERE id = OLD.corpus_id;
        END IF;
        RETURN OLD;
    END IF;
    -- only ready documents are searched: pending -> processing and the like change nothing
    IF NEW.status IS DISTINCT FROM 'ready'
        AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'ready') THEN
        RETURN NEW;
    END IF;
    UPDATE knowledge_corpora SET content_version = content_version + 1 WHERE id = NEW.corpus_id;
    IF TG_OP = 'UPDATE' AND OLD.corpus_id IS DISTINCT FROM NEW.corpus_id THEN
        UPDATE knowledge_corpora SET content_version = content_version + 1
            WHERE id = OLD.corpus_id;
    END IF;
    RETURN NEW;
END
$rex$;

DROP TRIGGER IF EXISTS rex_knowledge_documents_version ON knowledge_documents;
CREATE TRIGGER rex_knowledge_documents_version
    AFTER INSERT OR UPDATE OR DELETE ON knowledge_documents
    FOR EACH ROW EXECUTE FUNCTION rex_knowledge_corpus_bump();

-- the corpus status recomputation probes a corpus's documents by status (docs/knowledge.md)
CREATE INDEX IF NOT EXISTS knowledge_documents_corpus_status_idx
    ON knowledge_documents (corpus_id, status);
