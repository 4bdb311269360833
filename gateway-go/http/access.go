package http

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// maxJSONBodyBytes bounds the body of every request that is not an upload.
const maxJSONBodyBytes = 64 << 10

// corsAllowHeaders are the request headers a cross-origin client may send.
const corsAllowHeaders = "Authorization, Content-Type, Range, Last-Event-ID"

// corsExposeHeaders are the response headers a cross-origin client may read.
const corsExposeHeaders = "Location, Content-Disposition, Content-Length, Content-Range, ETag"

// needsToken reports whether r must carry the API token: everything but the
// health check, CORS preflights and the UI's static files.
func needsToken(r *http.Request) bool {
	p := r.URL.Path
	if p == "/api/v1/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return false
	}
	if isWebSocketUpgrade(r) {
		return true
	}
	return strings.HasPrefix(p, "/api/") || p == "/api" || strings.HasPrefix(p, "/v1/") || p == "/v1" || p == "/metrics"
}

// requestToken returns the token r carries: Authorization: Bearer, else the
// token query parameter (browsers' EventSource and WebSocket, FunASR clients).
func requestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

// tokenOK compares r's token with APIToken in constant time.
func (s *Server) tokenOK(r *http.Request) bool {
	got := requestToken(r)
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.APIToken)) == 1
}

// corsOrigin returns the value of Access-Control-Allow-Origin for origin, ""
// when origin is not allowed.
func (s *Server) corsOrigin(origin string) string {
	if origin == "" || len(s.CORSOrigins) == 0 {
		return ""
	}
	for _, o := range s.CORSOrigins {
		if o == "*" {
			return "*"
		}
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}

// guard applies the CORS policy, answers preflights, refuses requests
// without the API token, and bounds bodies that are not uploads.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if len(s.CORSOrigins) > 0 {
			w.Header().Add("Vary", "Origin")
		}
		allow := s.corsOrigin(origin)
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			if allow == "" {
				s.Error(w, r, asr.Errorf(asr.EFORBIDDEN, "Cross-origin requests from %s are not allowed.", truncate(origin, 100)))
				return
			}
			h := w.Header()
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allow != "" {
			w.Header().Set("Access-Control-Allow-Origin", allow)
			w.Header().Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		if s.APIToken != "" && needsToken(r) && !s.tokenOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="asr"`)
			err := asr.Errorf(asr.EUNAUTHORIZED, "Missing or wrong API token: send Authorization: Bearer <token> or ?token=<token>.")
			if isOpenAIPath(r.URL.Path) {
				s.openAIError(w, r, err, "")
			} else {
				s.Error(w, r, err)
			}
			return
		}
		if !isUploadPath(r.URL.Path) && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > maxJSONBodyBytes {
				s.Error(w, r, asr.Errorf(asr.ETOOLARGE, "The request body is larger than %d KiB.", maxJSONBodyBytes>>10))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxJSONBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// isUploadPath reports whether path takes an audio upload.
func isUploadPath(path string) bool {
	return path == "/api/v1/asr/submit" || path == "/v1/audio/transcriptions"
}

// isOpenAIPath reports whether path belongs to the OpenAI-compatible API,
// whose errors have OpenAI's shape.
func isOpenAIPath(path string) bool {
	return strings.HasPrefix(path, "/v1/")
}

// clientIP returns the IP address of r's remote end.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
