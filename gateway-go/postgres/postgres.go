// Package postgres implements the asr services on PostgreSQL through pgx/v5.
//
// Queries live in internal/dbsqlc/*.sql, one file per table, and sqlc
// generates their Go code; this package only composes them into transactions
// and maps rows to domain types. Jobs are deferred through Procrastinate's
// versioned SQL API in the same transaction as the row they belong to.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/postgres/internal/dbsqlc"
)

// Ensure the interface is implemented.
var _ asr.HealthService = (*DB)(nil)

// DB is a pool of connections to the project's database.
type DB struct {
	Pool *pgxpool.Pool
	// URL is the database URL the pool was opened with.
	URL string
}

// Open connects a pool to databaseURL and checks that it answers. Returns
// EINVALID for a malformed URL and EUNAVAILABLE when the server does not answer.
func Open(ctx context.Context, databaseURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, asr.Errorf(asr.EINVALID, "Malformed database URL: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	db := &DB{Pool: pool, URL: databaseURL}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes every connection of the pool.
func (db *DB) Close() {
	db.Pool.Close()
}

// Ping returns EUNAVAILABLE when the database does not answer.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Pool.Ping(ctx); err != nil {
		return asr.Errorf(asr.EUNAVAILABLE, "The database does not answer: %v", err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return fn(dbsqlc.New(tx))
	})
}

// queries returns the non-transactional queries.
func (db *DB) queries() *dbsqlc.Queries {
	return dbsqlc.New(db.Pool)
}

// wrapErr turns failures to reach the database into EUNAVAILABLE and leaves
// every other error as it is.
func wrapErr(err error) error {
	if err == nil || asr.ErrorCode(err) != asr.EINTERNAL {
		return err
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || errors.Is(err, puddle.ErrClosedPool) {
		return asr.Errorf(asr.EUNAVAILABLE, "The database is unavailable.")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P0x: shutdown, crash, not accepting connections.
		if strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") {
			return asr.Errorf(asr.EUNAVAILABLE, "The database is unavailable.")
		}
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return asr.Errorf(asr.EUNAVAILABLE, "The database is unavailable.")
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
