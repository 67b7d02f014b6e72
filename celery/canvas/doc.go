// Package canvas is Celery's canvas in Go: signatures (task, args, kwargs,
// options, subtask_type, immutable), chains, groups and chords, built with a
// typed API and encoded exactly as Python's celery.canvas encodes them, so
// Python and Go workers can run the same workflows.
//
// Building: S and SI make task signatures; Chain, Group and Chord compose
// them; Link, LinkError and the option setters return modified copies.
//
// Applying: an Applier turns a signature into the protocol.TaskMessage(s) a
// Celery 5.2 client publishes (Apply), and after a task has finished into the
// messages a Celery 5.2 worker publishes (NextChainStep, Callbacks, Errbacks,
// ChordBody). A Sender publishes them through a broker.Broker with the
// client's routing rules, storing a chord's header size first (ChordSizer).
//
// Results: a group's GroupResult is saved in a backend.GroupStore with
// SaveGroup (Redis: under celery-taskset-meta-<id>) and read with
// RestoreGroup; Children gives the `children` value of a parent task's
// result meta. Chord counting goes through a backend.ChordStore, so the
// package depends on no particular result backend.
package canvas
