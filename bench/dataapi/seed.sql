-- seed.sql: the data API benchmark's data, :ads ads (psql -v ads=N), in the schema of search_path.
-- ads/100 advertisers, ads/4 campaigns (4 ads each), every ad with two stats rows.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
INSERT INTO advertisers (id, external_id, name)
SELECT i, 'adv-' || i, 'Advertiser ' || i FROM generate_series(1, greatest(:ads / 100, 1)) i;
INSERT INTO campaigns (id, external_id, advertiser_id, name, status, bid_micros, daily_budget_micros, start_at,
                       target_countries)
SELECT i, 'camp-' || i, 1 + i % greatest(:ads / 100, 1), 'Campaign ' || i,
       CASE WHEN i % 50 = 7 THEN 'paused' ELSE 'active' END, 10000 + (i * 7919) % 990000, 1000000000,
       now() - interval '3 days', CASE WHEN i % 5 = 4 THEN ARRAY['US', 'DE'] ELSE '{}' END
FROM generate_series(1, greatest(:ads / 4, 1)) i;
INSERT INTO ads (id, external_id, campaign_id, title, body, image_url, click_url, status)
SELECT i, 'ad-' || i, 1 + (i - 1) / 4, 'Ad number ' || i, 'Body of ad ' || i || ', a line of copy',
       CASE WHEN i % 2 = 0 THEN 'https://img.example/' || i || '.png' END,
       'https://example.com/landing/' || i,
       CASE WHEN i % 20 = 0 THEN 'paused' ELSE 'active' END
FROM generate_series(1, :ads) i;
INSERT INTO ad_stats_hourly (ad_id, forum, hour, impressions, clicks, spend_micros)
SELECT i, 'f' || (i % 500), date_trunc('hour', now()) - make_interval(hours => h),
       100 + (i * 31 + h) % 900, (i * 17 + h) % 40, 5000
FROM generate_series(1, :ads) i, (VALUES (1), (30)) AS hh(h);
SELECT setval(pg_get_serial_sequence('advertisers', 'id'), (SELECT max(id) FROM advertisers));
SELECT setval(pg_get_serial_sequence('campaigns', 'id'), (SELECT max(id) FROM campaigns));
SELECT setval(pg_get_serial_sequence('ads', 'id'), (SELECT max(id) FROM ads));
ANALYZE advertisers, campaigns, ads, ad_stats_hourly;
