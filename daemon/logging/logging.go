// Package logging sets up acquit's zerolog logger: JSON lines on stdout for
// journald, or a readable console format when stdout is a terminal.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Options selects the level and format of the logger.
type Options struct {
	Level  string    // trace, debug, info, warn, error; default info
	Format string    // auto, json, console; default auto
	Out    io.Writer // default os.Stdout
}

// New builds a logger. "auto" picks console on a terminal, JSON otherwise.
func New(o Options) (zerolog.Logger, error) {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	lvl := zerolog.InfoLevel
	if o.Level != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(o.Level))
		if err != nil {
			return zerolog.Nop(), fmt.Errorf("log level %q: %w", o.Level, err)
		}
		lvl = l
	}
	format := o.Format
	if format == "" || format == "auto" {
		format = "json"
		if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "console"
		}
	}
	switch format {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want auto, json or console", o.Format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}
