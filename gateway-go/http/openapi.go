package http

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3 description of the API, served at
// /api/v1/openapi.json. openapi_test.go checks that it describes every
// registered route and that real responses validate against it.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(OpenAPI)
}
