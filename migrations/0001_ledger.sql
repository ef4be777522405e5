-- The appliance's own ledger, kept in schema coder_airgap so it never mixes with coderd's
-- tables in public. The migrator creates the schema and keeps _sqlx_migrations in it too.
-- Every name is schema-qualified on purpose: nothing here depends on search_path.

CREATE TABLE coder_airgap.installs (
    id               BIGSERIAL PRIMARY KEY,
    bundle           TEXT NOT NULL,
    version          TEXT NOT NULL,
    sequence         BIGINT NOT NULL,
    release_dir      TEXT NOT NULL,
    installed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    installed_by     TEXT NOT NULL,
    previous_release TEXT,
    outcome          TEXT NOT NULL
        CHECK (outcome IN ('in_progress', 'succeeded', 'failed', 'rolled_back'))
);

CREATE TABLE coder_airgap.certificates (
    serial    TEXT PRIMARY KEY,
    names     TEXT[] NOT NULL,
    not_after TIMESTAMPTZ NOT NULL,
    purpose   TEXT NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE coder_airgap.backups (
    id       BIGSERIAL PRIMARY KEY,
    path     TEXT NOT NULL,
    sha256   TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes    BIGINT NOT NULL CHECK (bytes >= 0),
    taken_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    release  TEXT NOT NULL,
    reason   TEXT NOT NULL
);

CREATE TABLE coder_airgap.upgrades (
    id           BIGSERIAL PRIMARY KEY,
    from_version TEXT NOT NULL,
    to_version   TEXT NOT NULL,
    backup_id    BIGINT REFERENCES coder_airgap.backups (id),
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    outcome      TEXT NOT NULL
        CHECK (outcome IN ('in_progress', 'succeeded', 'failed', 'rolled_back'))
);
