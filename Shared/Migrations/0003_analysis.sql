-- The nightly analysis (aira-analyzer). One run per analysed day; see docs/analyzer.md.
CREATE TABLE analysis_runs (
    -- The day whose active users are analysed (a calendar day in `timezone`).
    day            date PRIMARY KEY,
    -- requested → preparing → fanning_out → running → completed
    status         text NOT NULL CHECK (status IN ('requested', 'preparing', 'fanning_out', 'running', 'completed')),
    -- Bumped by every deliberate re-run; messages of an older generation are ignored.
    generation     integer NOT NULL DEFAULT 1,
    trigger        text NOT NULL,                  -- schedule | catch_up | manual
    timezone       text NOT NULL,
    holder         text,                           -- the instance that prepared and fanned out (last)
    requested_at   timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    fanned_out_at  timestamptz,
    completed_at   timestamptz,
    duration_ms    bigint,
    users_total    integer NOT NULL DEFAULT 0,
    published      integer NOT NULL DEFAULT 0,     -- fan-out progress: users published so far …
    fanout_cursor  uuid,                           -- … in user id order, up to this one
    succeeded      integer NOT NULL DEFAULT 0,
    failed         integer NOT NULL DEFAULT 0,
    -- The return-likelihood model fitted for this run: coefficients, scaling, fit quality.
    model          jsonb,
    -- Document frequencies of interest terms over the population ({"term": users}).
    vocabulary     jsonb,
    population     integer NOT NULL DEFAULT 0
);
CREATE INDEX analysis_runs_open ON analysis_runs (status) WHERE status <> 'completed';

-- The users of a run and where each stands: counted once whatever the redeliveries.
CREATE TABLE analysis_run_users (
    day      date NOT NULL REFERENCES analysis_runs (day) ON DELETE CASCADE,
    user_id  uuid NOT NULL,
    state    text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    reason   text,
    PRIMARY KEY (day, user_id)
);

-- A user's insights for a day, replaced by a re-run (keyed by user and day).
CREATE TABLE analysis_results (
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day               date NOT NULL,
    generation        integer NOT NULL,
    events            integer NOT NULL,
    active_days       integer NOT NULL,
    counts_by_type    jsonb NOT NULL,
    counts_by_day     jsonb NOT NULL,
    interests         jsonb NOT NULL,
    return_likelihood double precision,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);
CREATE INDEX analysis_results_day ON analysis_results (day);
