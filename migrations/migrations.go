// Package migrations holds every SQL schema change of the project, in order,
// and embeds them so the gateway binary can apply them with no checkout at hand.
//
// The files are plain SQL run by tern (github.com/jackc/tern/v2/migrate), each
// in its own transaction. 0001 is Procrastinate's schema at the version that
// worker-py pins; later files are the project's own.
package migrations

import "embed"

// FS holds the numbered *.sql migration files.
//
//go:embed *.sql
var FS embed.FS
