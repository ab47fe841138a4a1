-- Posts (owned by aira-gateway): written by users, browsed and searched by everyone.
-- docs/search.md explains the indexes and the queries that use them.

-- Trigram matching for titles: search falls back to it when the words match nothing (typos).
-- pg_trgm is a trusted extension: the database owner may create it. In public, so that every
-- schema sees it (services and tests working in a schema of their own search it after theirs).
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;

CREATE TABLE posts (
    id         uuid PRIMARY KEY,
    author_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text NOT NULL,
    body       text NOT NULL,
    tags       text[] NOT NULL DEFAULT '{}',
    like_count bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The 'simple' configuration (lower-cased words, no stemming, no stop words): posts are
    -- written in many languages (Korean among them), and a language's stemmer would mangle the
    -- others. Title words weigh more than body words in the ranking.
    search     tsvector GENERATED ALWAYS AS (
                   setweight(to_tsvector('simple'::regconfig, title), 'A') ||
                   setweight(to_tsvector('simple'::regconfig, body), 'B')) STORED
);
-- Keyset paging, newest first (id breaks ties), overall and per author.
CREATE INDEX posts_newest ON posts (created_at DESC, id DESC);
CREATE INDEX posts_author_newest ON posts (author_id, created_at DESC, id DESC);
-- Most liked first.
CREATE INDEX posts_most_liked ON posts (like_count DESC, created_at DESC, id DESC);
-- Tag filter (tags @> ARRAY[...]).
CREATE INDEX posts_tags ON posts USING gin (tags);
-- Full-text search (search @@ tsquery).
CREATE INDEX posts_search ON posts USING gin (search);
-- Similar titles (keyword <% title) when the words match nothing.
CREATE INDEX posts_title_trgm ON posts USING gin (title public.gin_trgm_ops);

CREATE TABLE post_likes (
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX post_likes_user ON post_likes (user_id);
