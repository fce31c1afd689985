-- rex-worker's schema: the tables REX's worker reads and writes (rex-behaviour.md §3), column-
-- compatible with REX's own migrations, made consistent: one tenants table with the default
-- tenant, tenant_id on every table REX gives one (nullable on execution_context_snapshots, which
-- REX's schema and migrations disagree on), workflows.is_assigned / assigned_by present.
-- Every statement is idempotent (IF NOT EXISTS) so the file also applies over a database built by
-- REX's own migrations.

CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(255) NOT NULL UNIQUE,
    name varchar(255) NOT NULL,
    password_hash varchar(255) NOT NULL,
    role varchar(20) NOT NULL DEFAULT 'editor',
    global_role varchar(20) NOT NULL DEFAULT 'user',
    consent_given_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL,
    slug varchar(80) NOT NULL UNIQUE,
    plan_tier varchar(20) NOT NULL DEFAULT 'starter',
    is_active boolean NOT NULL DEFAULT true,
    settings jsonb,
    created_by uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id, name, slug)
VALUES ('00000000-0000-0000-0000-000000000001', 'Default tenant', 'default')
ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS workflows (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    workspace_id uuid,
    name varchar(255) NOT NULL,
    description varchar(2048) NOT NULL DEFAULT '',
    status varchar(20) NOT NULL DEFAULT 'inactive',
    nodes jsonb NOT NULL DEFAULT '[]',
    edges jsonb NOT NULL DEFAULT '[]',
    version integer NOT NULL DEFAULT 1,
    is_assigned boolean NOT NULL DEFAULT false,
    assigned_by uuid REFERENCES users(id) ON DELETE SET NULL,
    source_template_id varchar(100),
    source_template_version integer,
    source_template_params jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflows_user_id_idx ON workflows (user_id);
CREATE INDEX IF NOT EXISTS workflows_status_idx ON workflows (status);
CREATE INDEX IF NOT EXISTS workflows_tenant_id_idx ON workflows (tenant_id);

CREATE TABLE IF NOT EXISTS executions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    workflow_id uuid NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    status varchar(20) NOT NULL DEFAULT 'pending',
    trigger_payload jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz,
    finished_at timestamptz,
    error_message varchar(4096),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS executions_workflow_id_idx ON executions (workflow_id);
CREATE INDEX IF NOT EXISTS executions_status_idx ON executions (status);
CREATE INDEX IF NOT EXISTS executions_created_at_idx ON executions (created_at);
CREATE INDEX IF NOT EXISTS executions_tenant_id_idx ON executions (tenant_id);

CREATE TABLE IF NOT EXISTS execution_steps (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    execution_id uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    node_id varchar(255) NOT NULL,
    node_type varchar(100) NOT NULL,
    status varchar(20) NOT NULL DEFAULT 'pending',
    input jsonb NOT NULL DEFAULT '{}',
    output jsonb,
    duration_ms integer,
    error varchar(4096),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_steps_execution_id_idx ON execution_steps (execution_id);
CREATE INDEX IF NOT EXISTS execution_steps_node_id_idx ON execution_steps (node_id);
CREATE INDEX IF NOT EXISTS execution_steps_tenant_id_idx ON execution_steps (tenant_id);

CREATE TABLE IF NOT EXISTS execution_step_attempts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    execution_id uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    node_id varchar(255) NOT NULL,
    node_type varchar(100) NOT NULL,
    attempt integer NOT NULL,
    status varchar(20) NOT NULL,
    duration_ms integer NOT NULL,
    reason varchar(4096),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_step_attempts_execution_id_idx
    ON execution_step_attempts (execution_id);
CREATE INDEX IF NOT EXISTS execution_step_attempts_node_id_idx ON execution_step_attempts (node_id);
CREATE INDEX IF NOT EXISTS execution_step_attempts_status_idx ON execution_step_attempts (status);
CREATE INDEX IF NOT EXISTS execution_step_attempts_attempt_idx ON execution_step_attempts (attempt);

CREATE TABLE IF NOT EXISTS execution_context_snapshots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants(id) ON DELETE CASCADE,
    execution_id uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    sequence integer NOT NULL,
    reason varchar(20) NOT NULL,
    node_id varchar(255),
    node_type varchar(100),
    state jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_context_snapshots_execution_id_idx
    ON execution_context_snapshots (execution_id);
CREATE INDEX IF NOT EXISTS execution_context_snapshots_execution_sequence_idx
    ON execution_context_snapshots (execution_id, sequence);
CREATE INDEX IF NOT EXISTS execution_context_snapshots_reason_idx
    ON execution_context_snapshots (reason);

CREATE TABLE IF NOT EXISTS execution_retrieval_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    execution_id uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    node_id varchar(255) NOT NULL,
    node_type varchar(100) NOT NULL,
    query text NOT NULL,
    top_k integer NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    status varchar(20) NOT NULL,
    matches_count integer NOT NULL DEFAULT 0,
    duration_ms integer NOT NULL,
    error_message varchar(4096),
    scope_type varchar(30),
    corpus_id uuid,
    workflow_id_scope uuid,
    execution_id_scope uuid,
    strategy varchar(40),
    retriever_key varchar(100),
    branch_index integer,
    selected boolean,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_retrieval_events_execution_id_idx
    ON execution_retrieval_events (execution_id);
CREATE INDEX IF NOT EXISTS execution_retrieval_events_node_id_idx
    ON execution_retrieval_events (node_id);
CREATE INDEX IF NOT EXISTS execution_retrieval_events_status_idx
    ON execution_retrieval_events (status);
CREATE INDEX IF NOT EXISTS execution_retrieval_events_retriever_key_idx
    ON execution_retrieval_events (retriever_key);
CREATE INDEX IF NOT EXISTS execution_retrieval_events_strategy_idx
    ON execution_retrieval_events (strategy);

CREATE TABLE IF NOT EXISTS execution_authorizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    execution_id uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    workflow_id uuid NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    action varchar(40) NOT NULL DEFAULT 'execute',
    attributes jsonb NOT NULL DEFAULT '{}',
    expires_at timestamptz NOT NULL,
    validated_at timestamptz,
    revoked boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_authorizations_execution_id_idx
    ON execution_authorizations (execution_id);
CREATE INDEX IF NOT EXISTS execution_authorizations_workflow_id_idx
    ON execution_authorizations (workflow_id);
CREATE INDEX IF NOT EXISTS execution_authorizations_user_id_idx
    ON execution_authorizations (user_id);
CREATE INDEX IF NOT EXISTS execution_authorizations_expires_at_idx
    ON execution_authorizations (expires_at);

CREATE TABLE IF NOT EXISTS knowledge_corpora (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    description varchar(2048) NOT NULL DEFAULT '',
    scope_type varchar(30) NOT NULL DEFAULT 'user',
    workflow_id uuid REFERENCES workflows(id) ON DELETE CASCADE,
    execution_id uuid REFERENCES executions(id) ON DELETE CASCADE,
    status varchar(20) NOT NULL DEFAULT 'ingesting',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS knowledge_corpora_user_id_idx ON knowledge_corpora (user_id);
CREATE INDEX IF NOT EXISTS knowledge_corpora_scope_type_idx ON knowledge_corpora (scope_type);
CREATE INDEX IF NOT EXISTS knowledge_corpora_workflow_id_idx ON knowledge_corpora (workflow_id);
CREATE INDEX IF NOT EXISTS knowledge_corpora_execution_id_idx ON knowledge_corpora (execution_id);
CREATE INDEX IF NOT EXISTS knowledge_corpora_status_idx ON knowledge_corpora (status);

CREATE TABLE IF NOT EXISTS knowledge_documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    corpus_id uuid NOT NULL REFERENCES knowledge_corpora(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source_type varchar(30) NOT NULL DEFAULT 'upload',
    title varchar(255) NOT NULL,
    mime_type varchar(100),
    content_text text NOT NULL,
    status varchar(20) NOT NULL DEFAULT 'pending',
    error varchar(4096),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS knowledge_documents_corpus_id_idx ON knowledge_documents (corpus_id);
CREATE INDEX IF NOT EXISTS knowledge_documents_user_id_idx ON knowledge_documents (user_id);
CREATE INDEX IF NOT EXISTS knowledge_documents_status_idx ON knowledge_documents (status);

CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    corpus_id uuid NOT NULL REFERENCES knowledge_corpora(id) ON DELETE CASCADE,
    document_id uuid NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    chunk_index integer NOT NULL,
    content text NOT NULL,
    token_count integer,
    embedding jsonb NOT NULL DEFAULT '[]',
    embedding_model varchar(100) NOT NULL DEFAULT 'rex-hash-v1',
    page_number integer,
    section_path varchar(1024),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS knowledge_chunks_corpus_id_idx ON knowledge_chunks (corpus_id);
CREATE INDEX IF NOT EXISTS knowledge_chunks_document_id_idx ON knowledge_chunks (document_id);
CREATE INDEX IF NOT EXISTS knowledge_chunks_corpus_chunk_idx
    ON knowledge_chunks (corpus_id, chunk_index);

CREATE TABLE IF NOT EXISTS api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider varchar(20) NOT NULL,
    encrypted_key varchar(1024) NOT NULL,
    label varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_keys_tenant_id_idx ON api_keys (tenant_id);
CREATE INDEX IF NOT EXISTS api_keys_user_id_idx ON api_keys (user_id);
CREATE INDEX IF NOT EXISTS api_keys_provider_idx ON api_keys (provider);

CREATE TABLE IF NOT EXISTS domain_configs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid REFERENCES users(id) ON DELETE CASCADE,
    workflow_id uuid REFERENCES workflows(id) ON DELETE CASCADE,
    domain varchar(80) NOT NULL DEFAULT 'default',
    config jsonb NOT NULL DEFAULT '{}',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS domain_configs_user_id_idx ON domain_configs (user_id);
CREATE INDEX IF NOT EXISTS domain_configs_workflow_id_idx ON domain_configs (workflow_id);
CREATE INDEX IF NOT EXISTS domain_configs_is_active_idx ON domain_configs (is_active);

CREATE TABLE IF NOT EXISTS guardrail_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    workflow_id uuid NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    execution_id uuid NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    node_id varchar(255) NOT NULL,
    node_type varchar(100) NOT NULL,
    guard_type varchar(50) NOT NULL,
    severity varchar(20) NOT NULL DEFAULT 'warn',
    reason varchar(1024) NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS guardrail_events_execution_id_idx ON guardrail_events (execution_id);
CREATE INDEX IF NOT EXISTS guardrail_events_workflow_id_idx ON guardrail_events (workflow_id);

CREATE TABLE IF NOT EXISTS alert_rules (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    workflow_id uuid REFERENCES workflows(id) ON DELETE CASCADE,
    rule_type varchar(50) NOT NULL,
    severity varchar(20) NOT NULL DEFAULT 'warn',
    threshold integer NOT NULL DEFAULT 1,
    window_minutes integer NOT NULL DEFAULT 60,
    config jsonb NOT NULL DEFAULT '{}',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS alert_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001'
        REFERENCES tenants(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    workflow_id uuid REFERENCES workflows(id) ON DELETE CASCADE,
    alert_rule_id uuid REFERENCES alert_rules(id) ON DELETE SET NULL,
    rule_type varchar(50) NOT NULL,
    severity varchar(20) NOT NULL DEFAULT 'warn',
    message varchar(1024) NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    triggered_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
