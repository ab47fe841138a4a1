-- Accounts: owned by aira-auth; aira-admin creates the first admin.
CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL,
    password_hash       text NOT NULL,
    role                text NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMIN')),
    email_verified_at   timestamptz,
    suspended_at        timestamptz,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Emails are stored lower-cased; the index enforces it case-insensitively anyway.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role ON users (role) WHERE role = 'ADMIN';
