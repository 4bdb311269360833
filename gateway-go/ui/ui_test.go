package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanasr/lanasr/gateway-go/ui"
	"github.com/stretchr/testify/require"
)

type testBundle struct {
	dir string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "assets"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>app</html>"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "assets", "app-1234.js"), []byte("console.log(1)"), 0o644))
	return &testBundle{dir: dir}
}

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestHandler(t *testing.T) {
	t.Parallel()

	t.Run("LiveDirectoryWithSPAFallback", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h := ui.Handler(b.dir)

		resp, body := get(t, h, "GET", "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "<html>app</html>", body)

		resp, body = get(t, h, "GET", "/assets/app-1234.js")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "console.log(1)", body)

		resp, body = get(t, h, "GET", "/history/42")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "<html>app</html>", body)

		resp, _ = get(t, h, "GET", "/assets/missing.js")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)

		resp, _ = get(t, h, "POST", "/")
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

		resp, body = get(t, h, "GET", "/../../etc/passwd")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "<html>app</html>", body)
	})

	t.Run("NotBuiltPage", func(t *testing.T) {
		t.Parallel()
		h := ui.Handler(t.TempDir())
		resp, body := get(t, h, "GET", "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "make frontend")
	})

	t.Run("Embedded", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, ui.Handler(""), "GET", "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "<html")
	})
}
