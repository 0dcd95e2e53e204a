//! The job store's tables, in the words of either database: `int` is its 64-bit integer type,
//! `id` an integer key that is never reused (SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`,
//! PostgreSQL's `BIGSERIAL PRIMARY KEY`).

/// The tables and indexes of the job store.
pub(super) fn tables(int: &str, id: &str) -> String {
    format!(
        "
CREATE TABLE IF NOT EXISTS projects(
    name TEXT PRIMARY KEY,
    created_ms {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS models(
    project TEXT NOT NULL REFERENCES projects(name),
    version {int} NOT NULL,
    created_ms {int} NOT NULL,
    description TEXT,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    contract TEXT NOT NULL,
    PRIMARY KEY(project, version)
);
CREATE TABLE IF NOT EXISTS jobs(
    id {id},
    project TEXT NOT NULL REFERENCES projects(name),
    name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    configuration TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    created_ms {int} NOT NULL,
    updated_ms {int} NOT NULL,
    heartbeat_ms {int},
    component_name TEXT NOT NULL,
    component_version TEXT NOT NULL,
    output TEXT,
    UNIQUE(project, name)
);
CREATE INDEX IF NOT EXISTS jobs_component ON jobs(component_name, component_version);
-- Component name + version reservations, taken with the job and never given again while
-- the job has not FAILED: they outlive the job rows (a deleted project keeps its published
-- components' names). `job_id` (never reused) names the holder.
CREATE TABLE IF NOT EXISTS component_reservations(
    component_name TEXT NOT NULL,
    component_version TEXT NOT NULL,
    project TEXT NOT NULL,
    job_name TEXT NOT NULL,
    job_id {int} NOT NULL,
    created_ms {int} NOT NULL,
    PRIMARY KEY(component_name, component_version)
);
-- The last model version number given in each project: numbers are never reused, also
-- after the model or the project is deleted.
CREATE TABLE IF NOT EXISTS model_versions(
    project TEXT PRIMARY KEY,
    last {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS client_tokens(
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    created_ms {int} NOT NULL,
    PRIMARY KEY(operation, token)
);
"
    )
}
