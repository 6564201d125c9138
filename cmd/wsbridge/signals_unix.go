//go:build unix

package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsbridge/wsbridge/internal/tlsfiles"
)

// reloadOnHangup reloads the TLS files on every SIGHUP until ctx ends.
// Without TLS (store nil) it still catches SIGHUP, whose default would end
// the process, and says that there is nothing to reload.
func reloadOnHangup(ctx context.Context, store *tlsfiles.Store, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if store == nil {
			logger.Warn("SIGHUP: no TLS files to reload; other settings take effect on restart")
			continue
		}
		if _, err := store.Reload(true); err != nil {
			logger.Error("SIGHUP: TLS files do not load; the previous certificates stay in use", "err", err)
			continue
		}
		logger.Info("SIGHUP: TLS certificates reloaded")
	}
}
