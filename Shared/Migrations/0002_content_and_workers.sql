-- Content (owned by aira-gateway), the audit log (aira-audit-writer) and the sent-mail record
-- (aira-email-worker).

CREATE TABLE playlists (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL,
    description text NOT NULL DEFAULT '',
    is_public   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Keyset pagination: newest first, id breaks ties.
CREATE INDEX playlists_owner_page ON playlists (owner_id, created_at DESC, id DESC);
CREATE INDEX playlists_public_page ON playlists (created_at DESC, id DESC) WHERE is_public;

CREATE TABLE videos (
    id             uuid PRIMARY KEY,
    owner_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title          text NOT NULL,
    media_type     text NOT NULL,             -- sniffed from the content, e.g. video/mp4, image/png
    size_bytes     bigint NOT NULL,
    status         text NOT NULL DEFAULT 'processing' CHECK (status IN ('processing', 'ready', 'failed')),
    failure_reason text,
    thumbnail_path text,                      -- relative to the media folder
    play_count     bigint NOT NULL DEFAULT 0,
    like_count     bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX videos_owner_page ON videos (owner_id, created_at DESC, id DESC);

CREATE TABLE video_likes (
    video_id   uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, user_id)
);

CREATE TABLE playlist_videos (
    playlist_id uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    video_id    uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    position    bigint NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (playlist_id, video_id)
);
CREATE INDEX playlist_videos_order ON playlist_videos (playlist_id, position, video_id);

-- One row per audit event, stored once per message id however often it is delivered.
CREATE TABLE audit_log (
    message_id  text PRIMARY KEY,
    type        text NOT NULL,
    user_id     uuid,
    actor_id    uuid,
    occurred_at timestamptz NOT NULL,
    ip          text,
    attributes  jsonb NOT NULL DEFAULT '{}',
    stored_at   timestamptz NOT NULL DEFAULT now()
);
-- Admin queries (by user, by type, by time, newest first) and the analyzer (users active on a day).
CREATE INDEX audit_log_time ON audit_log (occurred_at DESC, message_id DESC);
CREATE INDEX audit_log_user_time ON audit_log (user_id, occurred_at DESC, message_id DESC);
CREATE INDEX audit_log_type_time ON audit_log (type, occurred_at DESC, message_id DESC);

-- Mail the email worker has handed to the SMTP server: a redelivered message is not sent again.
CREATE TABLE sent_emails (
    message_id   text PRIMARY KEY,
    recipient    text NOT NULL,
    template     text NOT NULL,
    smtp_reply   text NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now()
);
