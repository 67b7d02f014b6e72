// Package timeseries is the engine of ads.warm_timeseries: [Flush] moves the serving API's hourly
// delivery counters from Redis into PostgreSQL's ad_stats_hourly exactly once, then writes each
// recently active ad's dashboard series (rkeys.Series) back to Redis.
//
// # The counters
//
// The serving API increments keys.Counters(hour) (HINCRBY rkeys.CounterField(ad, forum, kind)) and
// adds that hash to keys.CounterHours() with ZADD NX, scored by the hour's unix time. An hour is
// closed Grace (default 30 s) after it ends; only closed hours are flushed.
//
// # One run
//
//  1. Claim. For every closed hour in CounterHours, one Lua script (atomic in Redis) ZREMs it,
//     RENAMEs the hash to keys.CounterBatch(hour, random id), PERSISTs it (a TTL the serving API may
//     have set must not expire a batch), and SADDs the batch to keys.CounterPending(). Two runs
//     claiming the same hour: the script checks the ZSCORE first, so only one gets it. An increment
//     that arrives after the rename creates a fresh hash and ZADD NX lists it again, so a later run
//     flushes it as another batch of the same hour: late counts are added, never lost.
//  2. Add. For every member of CounterPending (this run's batches and any an interrupted run left), in
//     one PostgreSQL transaction: INSERT INTO stats_flushes (batch) ON CONFLICT DO NOTHING. If that
//     inserted nothing, the batch was added by a committed transaction: nothing is added. Otherwise
//     the batch is read with HSCAN in chunks (memory stays bounded whatever its size), streamed by
//     COPY into a temporary table, and added into ad_stats_hourly with one INSERT … ON CONFLICT DO
//     UPDATE SET x = x + excluded.x; the number of counters is recorded in the stats_flushes row;
//     commit.
//  3. Forget. DEL the batch, then SREM it from CounterPending.
//
// # Why each count is added exactly once
//
// A batch's adds and its stats_flushes row commit in the same transaction, and the adds happen only
// in the transaction whose INSERT created that row: the row is the proof the batch was added.
//
//   - Interrupted before the commit (crash, lost connection, error): the transaction rolls back, the
//     batch is still pending and intact, and the next run adds it in full.
//   - Interrupted after the commit, before the DEL or the SREM: the next run finds the row, adds
//     nothing, and finishes the DEL and SREM (both idempotent).
//   - Two runs on the same pending batch: the second INSERT waits on the first transaction's
//     uncommitted primary key. If the first commits, the second inserts nothing and adds nothing;
//     if it rolls back, the second inserts the row and adds the batch itself.
//   - A batch is never written after its rename (the serving API writes the hour's own key), so
//     every transaction that reads it reads the same counters. HSCAN may return a field twice
//     (while Redis rehashes the hash); the copy is deduplicated by field before the adds.
//   - Batch ids are random (64 bits) and the rename is RENAMENX: a claim never overwrites a batch.
//   - A reply lost to a network error and the command retried: a retried claim finds the hour gone
//     and claims nothing, but the batch it made is in CounterPending and step 2 takes it.
//
// Upserts into ad_stats_hourly run in (ad, forum) order, so two runs adding batches of the same hour
// at once wait on each other instead of deadlocking.
//
// # What is refused
//
// Nothing fails a batch because of its content, and nothing is dropped silently. A counter is skipped
// when its field is not exactly what rkeys.CounterField makes (a positive canonical ad id, a forum
// slug as in the forums table, a kind i, c or s), its value is not a non-negative integer, or its ad
// no longer exists (deleted ads' stats are deleted with them). Each skipped counter is counted in
// [Summary.Skipped], logged with its batch (the first 20 of a batch one by one, then a total), and
// kept for an operator in the Redis hash [RejectedKey] (keys.Prefix+"ctr:rejected"), field
// "<batch>|<counter field>", value the raw count. Entries of CounterHours or CounterPending that are
// not key names this layout makes are moved there too (field "<index key>|<member>"); the keys they
// name are left untouched.
//
// # Series
//
// After the flush, every ad with rows in ad_stats_hourly during the last 7 UTC days, or with counters
// in an hour not yet flushed, gets keys.Series(ad): JSON rkeys.Series with 24 hourly points (the last
// 23 hours and the current one) and 7 daily points (the last 6 days and today), UTC, oldest first,
// zero-filled. They sum ad_stats_hourly and, when the hashes of the hours still listed in
// CounterHours hold at most [Options.LiveFields] fields together, those counters too. PostgreSQL is
// read in a REPEATABLE READ snapshot taken before Redis is read, so a concurrent flush can make a
// series briefly short but never counts a batch twice. Each series expires when its newest bucket
// with data leaves the 7-day window (it would be all zeros from then on). The series are written in
// pipelines of 500.
//
// # Redis Cluster
//
// The claim script touches the hour's key, its batch key, CounterHours and CounterPending: on a
// Redis Cluster they must share a slot, which a hash-tagged prefix such as "{ads}:" ensures.
package timeseries
