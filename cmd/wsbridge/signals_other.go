//go:build !unix

package main

import (
	"context"
	"log/slog"

	"github.com/wsbridge/wsbridge/internal/tlsfiles"
)

// reloadOnHangup does nothing where there is no SIGHUP; the files are
// still watched.
func reloadOnHangup(context.Context, *tlsfiles.Store, *slog.Logger) {}
