package store

// migrations are applied in order; migrations[i] takes the schema from
// user_version i to i+1. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE jobs (
	id          INTEGER PRIMARY KEY,
	kind        TEXT NOT NULL,
	name        TEXT NOT NULL DEFAULT '',
	params      TEXT NOT NULL,             -- JSON: the fully resolved parameters
	state       TEXT NOT NULL,             -- queued|running|succeeded|failed|cancelled
	cancel      INTEGER NOT NULL DEFAULT 0,-- 1 once 'jobs cancel' asked for it
	workdir     TEXT NOT NULL,
	created_at  TEXT NOT NULL,             -- UTC, 2006-01-02T15:04:05.000Z
	finished_at TEXT
);
CREATE TABLE tasks (
	id               INTEGER PRIMARY KEY,
	job_id           INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	name             TEXT NOT NULL,        -- unique within the job, e.g. "train"
	kind             TEXT NOT NULL,        -- task kind from the registry
	params           TEXT NOT NULL,        -- JSON
	state            TEXT NOT NULL,
	attempt          INTEGER NOT NULL DEFAULT 0, -- claims so far (interruptions not counted)
	max_attempts     INTEGER NOT NULL DEFAULT 3,
	lease_owner      TEXT,
	lease_expires_at TEXT,
	heartbeat_at     TEXT,
	started_at       TEXT,
	finished_at      TEXT,
	error            TEXT,
	backend          TEXT,                 -- GoMLX backend actually used
	progress_label   TEXT,
	progress_done    INTEGER NOT NULL DEFAULT 0,
	progress_total   INTEGER NOT NULL DEFAULT 0,
	UNIQUE (job_id, name)
);
CREATE INDEX tasks_state ON tasks(state, job_id, id);
CREATE TABLE task_deps (
	task_id    INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	depends_on INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	PRIMARY KEY (task_id, depends_on)
);
CREATE TABLE metrics (
	id      INTEGER PRIMARY KEY,
	task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	step    INTEGER NOT NULL,
	epoch   INTEGER NOT NULL,
	name    TEXT NOT NULL,
	value   REAL NOT NULL,
	at      TEXT NOT NULL
);
CREATE INDEX metrics_task ON metrics(task_id, name, step);
CREATE TABLE artifacts (
	id         INTEGER PRIMARY KEY,
	task_id    INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	role       TEXT NOT NULL,              -- e.g. "submission", "model", "plot"
	path       TEXT NOT NULL,
	bytes      INTEGER NOT NULL,
	sha256     TEXT NOT NULL,
	created_at TEXT NOT NULL,
	UNIQUE (task_id, role, path)
);
CREATE TABLE checkpoints (
	id         INTEGER PRIMARY KEY,
	task_id    INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	step       INTEGER NOT NULL,
	path       TEXT NOT NULL,
	created_at TEXT NOT NULL
);
CREATE TABLE task_items (                -- items a long task has finished (images, tiles)
	task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	key     TEXT NOT NULL,
	PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
`,
	// 2: items carry a value (e.g. a tile's manifest row as JSON), so a
	// long task's per-item records live in the store.
	`ALTER TABLE task_items ADD COLUMN value TEXT;`,
}
