package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
	"github.com/lanasr/lanasr/migrations"
)

// VersionTable is tern's version table, shared with every tool that migrates.
const VersionTable = "public.schema_version"

// MigrateResult says which schema versions a Migrate call went between.
type MigrateResult struct {
	From, To, Latest int32
}

// Migrate applies every pending migration of migrations.FS to the database at
// databaseURL, each in its own transaction, under tern's advisory lock so
// concurrent callers are safe. logf, when not nil, is told about each step.
func Migrate(ctx context.Context, databaseURL string, logf func(format string, args ...any)) (*MigrateResult, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return MigrateConn(ctx, conn, logf)
}

// MigrateConn is Migrate on an open connection.
func MigrateConn(ctx context.Context, conn *pgx.Conn, logf func(format string, args ...any)) (*MigrateResult, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrator: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	if logf != nil {
		m.OnStart = func(seq int32, name, direction, _ string) {
			logf("migrating %s %d %s", direction, seq, name)
		}
	}
	from, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("current version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	to, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("current version: %w", err)
	}
	return &MigrateResult{From: from, To: to, Latest: int32(len(m.Migrations))}, nil
}
