// Package forumads holds what belongs to the repository as a whole: the PostgreSQL schema
// (schema.sql), embedded so every program and test applies the same one.
package forumads

import _ "embed"

// Schema is schema.sql: idempotent DDL for the ads database.
//
//go:embed schema.sql
var Schema string
