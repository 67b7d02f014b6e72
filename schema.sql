-- The ads system's PostgreSQL schema (PostgreSQL 15). Idempotent: applying it again changes nothing,
-- so scripts/run.sh and every test apply it on each start. Tables are created in the first schema of
-- the connection's search_path (tests give each test its own schema).
--
-- Money is integer micro-units of the account currency (1 = 0.000001), never floating point.
-- Bids are cost-per-click: an ad's expected value per impression is CTR x bid.

CREATE TABLE IF NOT EXISTS advertisers (
    id           bigserial PRIMARY KEY,
    external_id  text NOT NULL UNIQUE
                 CHECK (external_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email        text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'archived')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1   -- bumped on every update: the data API's ETag
);

-- Forums the embed runs on; a forum belongs to one category (targeting by category uses it).
CREATE TABLE IF NOT EXISTS forums (
    slug         text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    category     text NOT NULL CHECK (category ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS forums_category ON forums (category);

-- Targeting arrays: empty means "any". Countries are ISO 3166-1 alpha-2 codes (upper case).
-- Placements are where on the page the slot is: sidebar, inline, header, footer.
CREATE TABLE IF NOT EXISTS campaigns (
    id                   bigserial PRIMARY KEY,
    external_id          text NOT NULL UNIQUE
                         CHECK (external_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    advertiser_id        bigint NOT NULL REFERENCES advertisers (id) ON DELETE CASCADE,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status               text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'paused', 'ended', 'archived')),
    bid_micros           bigint NOT NULL CHECK (bid_micros > 0 AND bid_micros <= 1000000000),
    daily_budget_micros  bigint NOT NULL CHECK (daily_budget_micros > 0),
    start_at             timestamptz NOT NULL,
    end_at               timestamptz,
    target_forums        text[] NOT NULL DEFAULT '{}',
    target_categories    text[] NOT NULL DEFAULT '{}',
    target_countries     text[] NOT NULL DEFAULT '{}'
                         CHECK (array_position(target_countries, NULL) IS NULL),
    target_placements    text[] NOT NULL DEFAULT '{}'
                         CHECK (target_placements <@ ARRAY['sidebar', 'inline', 'header', 'footer']::text[]),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    version              integer NOT NULL DEFAULT 1,
    CHECK (end_at IS NULL OR end_at > start_at)
);
CREATE INDEX IF NOT EXISTS campaigns_advertiser ON campaigns (advertiser_id, id);
CREATE INDEX IF NOT EXISTS campaigns_serving ON campaigns (status, start_at, end_at);
CREATE INDEX IF NOT EXISTS campaigns_target_forums ON campaigns USING gin (target_forums);
CREATE INDEX IF NOT EXISTS campaigns_target_categories ON campaigns USING gin (target_categories);

-- Ads (creatives).
CREATE TABLE IF NOT EXISTS ads (
    id           bigserial PRIMARY KEY,
    external_id  text NOT NULL UNIQUE
                 CHECK (external_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    campaign_id  bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 90),
    body         text NOT NULL DEFAULT '' CHECK (length(body) <= 300),
    image_url    text CHECK (image_url IS NULL OR (image_url ~ '^https?://[^\s]+$' AND length(image_url) <= 2048)),
    click_url    text NOT NULL CHECK (click_url ~ '^https?://[^\s]+$' AND length(click_url) <= 2048),
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'paused', 'rejected', 'archived')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS ads_campaign ON ads (campaign_id, id);
CREATE INDEX IF NOT EXISTS ads_status ON ads (status, id);

-- Hourly delivery per ad and forum, flushed from Redis by ads.warm_timeseries.
CREATE TABLE IF NOT EXISTS ad_stats_hourly (
    ad_id         bigint NOT NULL REFERENCES ads (id) ON DELETE CASCADE,
    forum         text NOT NULL,
    hour          timestamptz NOT NULL CHECK (date_trunc('hour', hour, 'UTC') = hour),
    impressions   bigint NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    clicks        bigint NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    spend_micros  bigint NOT NULL DEFAULT 0 CHECK (spend_micros >= 0),
    PRIMARY KEY (ad_id, forum, hour)
);
CREATE INDEX IF NOT EXISTS ad_stats_hourly_hour ON ad_stats_hourly (hour);
CREATE INDEX IF NOT EXISTS ad_stats_hourly_ad_hour ON ad_stats_hourly (ad_id, hour);

-- One row per Redis counter batch moved into ad_stats_hourly: the flush's exactly-once guard.
CREATE TABLE IF NOT EXISTS stats_flushes (
    batch        text PRIMARY KEY,
    hour         timestamptz NOT NULL,
    counters     bigint NOT NULL CHECK (counters >= 0),
    flushed_at   timestamptz NOT NULL DEFAULT now()
);

-- Feed imports (ads.import_feed) and the rows each one refused.
CREATE TABLE IF NOT EXISTS import_runs (
    id            bigserial PRIMARY KEY,
    task_id       text,
    source        text NOT NULL,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    rows_total    bigint NOT NULL DEFAULT 0,
    rows_ok       bigint NOT NULL DEFAULT 0,
    rows_failed   bigint NOT NULL DEFAULT 0,
    error         text
);
CREATE INDEX IF NOT EXISTS import_runs_started ON import_runs (started_at DESC);

CREATE TABLE IF NOT EXISTS import_errors (
    id           bigserial PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES import_runs (id) ON DELETE CASCADE,
    line         bigint NOT NULL CHECK (line > 0),
    kind         text,            -- advertiser, campaign, ad (when the row said)
    external_id  text,
    field        text,            -- the field at fault, when one is
    reason       text NOT NULL,
    raw          text             -- the row as read (valid UTF-8, truncated to 2 KB)
);
CREATE INDEX IF NOT EXISTS import_errors_run ON import_errors (run_id, line);

-- Feature switches the serving API obeys (warmed into Redis by ads.warm_cache).
CREATE TABLE IF NOT EXISTS feature_switches (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    enabled      boolean NOT NULL DEFAULT false,
    value        jsonb,
    description  text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO feature_switches (name, enabled, value, description) VALUES
    ('serving.enabled', true, NULL, 'Off: the serving API answers every ad request with an empty list.'),
    ('serving.max_count', true, '10', 'The most ads one request may get.'),
    ('embed.images', true, NULL, 'Off: the embed renders ads without their image.')
ON CONFLICT (name) DO NOTHING;
