// Package dbtest gives each test its own PostgreSQL database, cloned from a
// template database that is migrated once per package run.
//
// The server comes from ASR_TEST_DATABASE_URL (a superuser URL); tests are
// skipped, with a message saying so, when it is unset.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lanasr/lanasr/gateway-go/postgres"
	"github.com/lanasr/lanasr/migrations"
)

// EnvURL names the variable holding the test server's superuser URL.
const EnvURL = "ASR_TEST_DATABASE_URL"

// TemplateName is the template database this suite builds.
const TemplateName = "lanasr_go_tpl"

// advisoryKey serialises template creation across concurrent test binaries.
const advisoryKey = 7_341_001

var (
	templateOnce sync.Once
	templateErr  error
)

// AdminURL returns ASR_TEST_DATABASE_URL, skipping the test when it is unset.
func AdminURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		tb.Skipf("%s is not set: skipping a test that needs PostgreSQL (make test sets it)", EnvURL)
	}
	return u
}

// NewDatabase creates a fresh database cloned from the migrated template and
// returns its URL; the database is dropped when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin := AdminURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	templateOnce.Do(func() { templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		tb.Fatalf("template database: %v", templateErr)
	}

	name := "lanasr_go_t_" + randomHex(6)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect %s: %v", EnvURL, err)
	}
	defer conn.Close(context.Background())
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+TemplateName)
		var pgErr *pgconn.PgError
		// 55006: the template is briefly in use by another session.
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && attempt < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// NewEmptyDatabase creates a fresh database with no schema at all, dropped
// when the test ends, and returns its URL.
func NewEmptyDatabase(tb testing.TB) string {
	tb.Helper()
	admin := AdminURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "lanasr_go_e_" + randomHex(6)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect %s: %v", EnvURL, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			defer conn.Close(context.Background())
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// WithDatabase returns u with its database name replaced by name.
func WithDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		// A keyword/value connection string.
		return u + " dbname=" + name
	}
	parsed.Path = "/" + name
	return parsed.String()
}

// ensureTemplate builds the template database unless one migrated from the
// same migration files exists; the migrations' hash is its comment.
func ensureTemplate(ctx context.Context, admin string) error {
	hash, err := migrationsHash()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect %s: %w", EnvURL, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryKey); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", advisoryKey) //nolint:errcheck

	var comment *string
	err = conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`,
		TemplateName).Scan(&comment)
	if err == nil && comment != nil && *comment == hash {
		return nil
	} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}

	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+TemplateName+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+TemplateName+" TEMPLATE template0"); err != nil {
		return err
	}
	if _, err := postgres.Migrate(ctx, WithDatabase(admin, TemplateName), nil); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = conn.Exec(ctx, "COMMENT ON DATABASE "+TemplateName+" IS '"+hash+"'")
	return err
}

func migrationsHash() (string, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return "migrations-" + hex.EncodeToString(h.Sum(nil))[:32], nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}
