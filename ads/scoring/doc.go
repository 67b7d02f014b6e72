// Package scoring is the engine of the ads.score task: it ranks every serving-eligible ad by its
// expected value per impression and publishes the rank lists of [rkeys] in Redis with one atomic swap.
//
// # Eligibility
//
// An ad is ranked when the ad, its campaign and its advertiser are all active, the campaign has
// started (start_at ≤ now) and not ended (end_at null or > now), and the campaign's spend today (UTC
// day) is below its daily_budget_micros. Today's spend is the ad_stats_hourly spend of all the
// campaign's ads (whatever their status) since midnight UTC, plus the spend counters ([rkeys.Spend])
// not yet flushed from the hourly counter hashes [rkeys.Keys.Counters] of today. Redis is read before
// PostgreSQL, so a flush running meanwhile can only count some spend twice (the campaign pauses a
// little early), never miss it. Batches being flushed (ctr:flushing:…) are not read.
//
// A campaign whose targeting cannot be used (a NULL, a forum or category that is not a slug, a
// country that is not two upper-case letters) is left out, logged with the campaign id and the value,
// and counted in [Summary].Invalid. Counter fields in Redis that [rkeys.ParseCounterField] refuses,
// or whose value is not a non-negative integer, are ignored, logged (the first few of each run) and
// counted in [Summary].BadCounters.
//
// # Click-through rate and expected value
//
// For each ad, over the window (default 7 days: the hours from now−Window through the current hour)
// of ad_stats_hourly plus the unflushed Redis counters of those hours (cheap: the same hashes are read
// for the budget), with a Beta(α, β) prior:
//
//	CTR = (clicks + α) / (impressions + α + β),   α = m·S, β = (1−m)·S
//	EV  = CTR × bid_micros                         (micros per impression; bids are per click)
//
// S is [Options].PriorStrength (default 200 impressions: an ad needs a few hundred impressions before
// its own clicks outweigh the prior, which keeps a new ad with 1 click in 3 impressions from jumping
// over ads with thousands of impressions). m is [Options].PriorMean when set, otherwise the window's
// global CTR, itself smoothed towards 1% with the same strength: m = (C + 0.01·S) / (I + S) over all
// ads' impressions I and clicks C. With plenty of data m is the market's CTR, so an unknown ad starts
// as an average ad; with no data m is 1%. A CTR above 1 (clicks counted in a later hour than their
// impressions) is capped at 1.
//
// # Lists
//
// For each placement of [rkeys.Placements] (a campaign without placement targeting is in all):
//
//   - [rkeys.Keys.RankDefault]: ads with no forum and no category targeting.
//   - [rkeys.Keys.RankCategory] for every category of the forums table and of the live campaigns'
//     target_categories: ads without forum targeting whose category targeting is empty or holds the
//     category.
//   - [rkeys.Keys.RankForum] for every forum of the forums table and of the live campaigns'
//     target_forums: ads whose forum targeting is empty or holds the forum, and whose category
//     targeting is empty or holds the forum's category (a forum missing from the table has none).
//
// Live campaigns are the active, started, not ended ones of active advertisers, over budget or not
// (so a campaign's keys do not come and go with its budget); a paused or ended campaign's targets
// get no list of their own, and the next run deletes such lists (the serving API then falls back
// to the default list, which is what they held anyway).
//
// Each value is the JSON array of [rkeys.Candidate] best first (EV descending, then ad id ascending),
// at most [Options].MaxCandidates long. Every one of these keys is written, "[]" when no ad qualifies,
// so an empty database leaves exactly the four default lists, each "[]", and deletes every other rank
// key (the serving API treats a missing list as empty anyway). Scoring keeps one small record per
// ranked ad and one bounded heap per targeted (placement, forum or category): memory grows with the
// number of ads and lists, never with their product.
//
// # Publishing
//
// The lists and the new index are first written to temporary keys <p>rank:tmp:<run token>:… (with a
// one-hour TTL, so a crashed run leaves nothing for long). Then, under WATCH of [rkeys.Keys.RankIndex]
// and [rkeys.Keys.RankMeta], one MULTI/EXEC renames every temporary key onto its rank key (PERSIST
// removes the TTL), deletes the keys of the previous index this run did not write, and updates the
// meta hash (generation by HINCRBY, generated_at, ads, keys). A reader sees all the old lists or all
// the new ones, never a missing or partial list. If another run committed in between, EXEC fails and
// the swap is tried again on the new index (the lists are all from one run either way). This needs
// all keys on one Redis node: Redis Cluster is not supported.
package scoring
