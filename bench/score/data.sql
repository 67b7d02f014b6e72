-- data.sql: the benchmark's data set, :ads ads (psql -v ads=N), in the schema of search_path.
-- ads/100 advertisers, ads/4 campaigns (4 ads each), 500 forums in 25 categories, 3 stats rows per ad.
-- Campaign targeting by id: %10 = 0 two forums, 1 a category, 2 two forums and a category, 3 sidebar
-- only; %5 = 4 countries US, DE. 2% of campaigns paused, 5% of ads paused, 2% of campaigns over budget.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
INSERT INTO forums (slug, name, category)
SELECT 'f' || i, 'Forum ' || i, 'c' || (i % 25) FROM generate_series(0, 499) i;
INSERT INTO advertisers (id, external_id, name)
SELECT i, 'adv-' || i, 'Advertiser ' || i FROM generate_series(1, greatest(:ads / 100, 1)) i;
INSERT INTO campaigns (id, external_id, advertiser_id, name, status, bid_micros, daily_budget_micros, start_at,
                       end_at, target_forums, target_categories, target_countries, target_placements)
SELECT i, 'camp-' || i, 1 + i % greatest(:ads / 100, 1), 'Campaign ' || i,
       CASE WHEN i % 50 = 7 THEN 'paused' ELSE 'active' END,
       10000 + (i * 7919) % 990000,
       CASE WHEN i % 50 = 3 THEN 1000 ELSE 1000000000 END,
       now() - interval '3 days', CASE WHEN i % 3 = 0 THEN now() + interval '30 days' END,
       CASE WHEN i % 10 IN (0, 2) THEN ARRAY['f' || (i % 500), 'f' || ((i * 7) % 500)] ELSE '{}' END,
       CASE WHEN i % 10 IN (1, 2) THEN ARRAY['c' || (i % 25)] ELSE '{}' END,
       CASE WHEN i % 5 = 4 THEN ARRAY['US', 'DE'] ELSE '{}' END,
       CASE WHEN i % 10 = 3 THEN ARRAY['sidebar'] ELSE '{}' END
FROM generate_series(1, greatest(:ads / 4, 1)) i;
INSERT INTO ads (id, external_id, campaign_id, title, body, image_url, click_url, status)
SELECT i, 'ad-' || i, 1 + (i - 1) / 4, 'Ad number ' || i, 'Body of ad ' || i,
       CASE WHEN i % 2 = 0 THEN 'https://img.example/' || i || '.png' END,
       'https://example.com/landing/' || i,
       CASE WHEN i % 20 = 0 THEN 'paused' ELSE 'active' END
FROM generate_series(1, :ads) i;
INSERT INTO ad_stats_hourly (ad_id, forum, hour, impressions, clicks, spend_micros)
SELECT i, 'f' || (i % 500), date_trunc('hour', now()) - make_interval(hours => h),
       100 + (i * 31 + h) % 900, (i * 17 + h) % 40, CASE WHEN h = 0 THEN 5000 ELSE 0 END
FROM generate_series(1, :ads) i, (VALUES (0), (25), (49)) AS hh(h);
ANALYZE forums, advertisers, campaigns, ads, ad_stats_hourly;
