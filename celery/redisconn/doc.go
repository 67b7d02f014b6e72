// Package redisconn turns the Redis URLs Celery users write into go-redis clients, so that every
// part of the system that talks to Redis (the result backend, the revoke store, beat's state, the
// Redis broker, the web programs) reads one configuration shape:
//
//	redis://[[user]:password@]host[:port][/db][?option=value]   one Redis (go-redis URL options kept)
//	rediss://…                                                    the same over TLS
//	unix://[[user]:password@]/path/to/redis.sock[?db=N]           a Unix socket
//	sentinel://[:password@]host[:port][/db];sentinel://host[:port];…
//	                                                              Redis Sentinel, as Celery and kombu read it
//
// # Sentinel
//
// A sentinel:// URL, or a ';'-separated list of them, names the Sentinels (port 26379 when none is
// given), never the master: the client asks the Sentinels which Redis is the master of
// master_name, follows it when a failover elects another, and dials the new master by itself
// (go-redis's failover client). As in Celery's SentinelBackend and kombu's SentinelChannel, the
// master's password and database number are those of the first URL; a later URL giving a
// different one is an error rather than silently ignored. The rest comes from the transport
// options (broker_transport_options for the broker, result_backend_transport_options for the
// result backend and this repository's other Redis settings), under Celery's names:
//
//	master_name          the monitored master's name (required)
//	sentinel_kwargs      the Sentinels' own connection: {password: …, username: …}; socket_* keys are
//	                     accepted (the client's timeouts apply to the Sentinels as well)
//	password             the master's password, when the URL carries none
//	min_other_sentinels  only 0 (go-redis asks one Sentinel at a time)
//	socket_timeout, socket_connect_timeout, max_connections
//	                     seconds / pool size, for any scheme (a URL query option wins)
//
// Other transport options (visibility_timeout, fanout_prefix, …) belong to their users and are
// ignored here.
//
// # Errors
//
// [Parse] reports an unparsable URL, an unknown scheme, a list mixing schemes, a missing
// master_name or an option of the wrong type, naming the setting. [CheckMaster] asks the Sentinels
// for the master at start: a Sentinel answering that it monitors no master of that name is an
// [*NoMasterError]; Sentinels that cannot be reached are not a configuration error (the client
// keeps asking, as a plain client keeps redialing a Redis that is down).
package redisconn
