// Package ui serves the web frontend: the Vite build embedded from dist/ (or,
// for development, a live directory), with unknown paths falling back to
// index.html so the single-page app's own routes work on reload.
package ui

import (
	"bytes"
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var embedded embed.FS

// DistFS returns the embedded build output, rooted at dist/.
func DistFS() fs.FS {
	sub, err := fs.Sub(embedded, "dist")
	if err != nil {
		panic(err) // dist/ is always embedded: it holds at least .keep.
	}
	return sub
}

// Handler returns a handler for the frontend. It serves dir from disk when
// dir is not empty, else the embedded build. When the build has no
// index.html, every page is a short notice that the frontend is not built.
func Handler(dir string) http.Handler {
	var fsys fs.FS
	if dir != "" {
		fsys = os.DirFS(dir)
	} else {
		fsys = DistFS()
	}
	return &handler{fsys: fsys, live: dir != ""}
}

type handler struct {
	fsys fs.FS
	live bool
}

var startTime = time.Now()

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	if serveFile(w, r, h.fsys, name, h.live) {
		return
	}
	// Missing assets are real 404s; anything else is an app route.
	if strings.HasPrefix(name, "assets/") {
		http.NotFound(w, r)
		return
	}
	if serveFile(w, r, h.fsys, "index.html", h.live) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "index.html", startTime, bytes.NewReader(notBuiltPage))
}

// serveFile serves name from fsys, reporting false when it is not a file.
func serveFile(w http.ResponseWriter, r *http.Request, fsys fs.FS, name string, live bool) bool {
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		return false
	}
	rs, ok := f.(interface {
		Read([]byte) (int, error)
		Seek(int64, int) (int64, error)
	})
	if !ok {
		return false
	}
	switch {
	case name == "index.html" || live:
		w.Header().Set("Cache-Control", "no-cache")
	case strings.HasPrefix(name, "assets/"):
		// Vite puts a content hash in every asset name.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	modTime := fi.ModTime()
	if modTime.IsZero() {
		modTime = startTime // embedded files have no time
	}
	http.ServeContent(w, r, name, modTime, rs)
	return true
}

var notBuiltPage = []byte(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>LAN ASR gateway</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;line-height:1.5;padding:0 1rem}code{background:#eee;padding:0 .3em}</style>
</head>
<body>
<h1>LAN ASR gateway</h1>
<p>The gateway is running, but the web frontend is not built into this binary.</p>
<p>Build it with <code>make frontend</code> and rebuild the gateway, or point <code>ASR_UI_DIR</code> at a built <code>dist/</code> directory.</p>
<p>The API is available: try <a href="/api/v1/health">/api/v1/health</a> and <a href="/api/v1/asr/history">/api/v1/asr/history</a>.</p>
</body>
</html>
`)
