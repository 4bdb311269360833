// Package asr holds the domain of the LAN speech-to-text gateway: transcription
// tasks, their segments, workers, queue figures and events, the services that
// manage them, and the error codes every layer shares.
//
// Subpackages implement the services against one dependency each: postgres/
// (PostgreSQL through pgx), storage/ (the local audio store), audiocheck/ (audio
// format sniffing), http/ (the HTTP API) and ui/ (the embedded frontend).
// cmd/asr-gateway wires them together.
package asr

import (
	"errors"
	"fmt"
)

// Version is the gateway's version, set at build time with
// -ldflags "-X github.com/lanasr/lanasr/gateway-go.Version=...".
var Version = "dev"

// Application error codes. Each maps to one HTTP status in http/.
const (
	ECONFLICT         = "conflict"
	EINTERNAL         = "internal"
	EINVALID          = "invalid"
	ENOTFOUND         = "not_found"
	ETOOLARGE         = "too_large"
	EUNSUPPORTEDMEDIA = "unsupported_media"
	ECORRUPTAUDIO     = "corrupt_audio"
	EUNAVAILABLE      = "unavailable"
	EUNAUTHORIZED     = "unauthorized"
	EFORBIDDEN        = "forbidden"
	ETIMEOUT          = "timeout"
	// ESTORAGEFULL: the audio store has no space left (HTTP 507).
	ESTORAGEFULL = "storage_full"
)

// Error is an application error: a machine-readable code and a sentence meant
// for the end user. Errors that are not *Error are internal errors whose text
// is logged but never shown.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Message is a human-readable sentence.
	Message string
}

// Error implements the error interface. It is not meant for end users.
func (e *Error) Error() string {
	return fmt.Sprintf("asr error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, a
// generic sentence for any other non-nil error, and "" for nil.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
