// Command ferretdb runs FerretDB v1 (MongoDB wire protocol over SQLite) for the embedded stack.
//
// It wraps FerretDB's embeddable package rather than building cmd/ferretdb, whose version check
// needs files generated in FerretDB's own repository and absent from the published module.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI of the state directory (must end with /)")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	gcPercent := flag.Int("gc-percent", 400, "Go GC target percent when GOGC is not set: the server's live heap is small and its garbage per command large, so collecting at 4x the live heap instead of 2x saves ~15% of its CPU")
	cpuProfile := flag.String("cpu-profile", "", "write a CPU profile (go tool pprof) of the whole run to this file, closed at exit (bench/load.py --profile)")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(*gcPercent)
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		log.Fatalf("bad -log-level: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	if *cpuProfile != "" {
		out, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatalf("-cpu-profile: %v", err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			log.Fatalf("-cpu-profile: %v", err)
		}
		code := serve(*listen, *sqliteURL, logger)
		pprof.StopCPUProfile()
		out.Close()
		os.Exit(code)
	}
	os.Exit(serve(*listen, *sqliteURL, logger))
}

// serve runs FerretDB until SIGINT or SIGTERM: the process's exit code.
func serve(listen, sqliteURL string, logger *slog.Logger) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		log.Print(err)
		return 1
	}
	logger.Info("FerretDB listening", "addr", listen)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Print(err)
		return 1
	}
	return 0
}
