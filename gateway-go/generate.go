package asr

// The Go code of postgres/internal/dbsqlc is generated from its *.sql files
// and ../migrations by sqlc, pinned here; the generated code is committed.
// Regenerate after changing a query or a migration, and check for drift with
// `go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.30.0 diff`.
//go:generate go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.30.0 generate
