package server

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Run starts the daemon and serves until SIGTERM or SIGINT (graceful drain,
// exit status 0) or ctx ends; SIGHUP reloads the configuration. Under
// systemd (Type=notify) it reports READY=1, RELOADING=1 and STOPPING=1 and
// pings the watchdog at half its interval while the store answers.
func Run(ctx context.Context, cfgPath string, o Options) error {
	d, err := Start(ctx, cfgPath, o)
	if err != nil {
		return err
	}
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReady)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var tick <-chan time.Time
	if iv, err := sddaemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return d.stop()
		case s := <-sigs:
			if s == syscall.SIGHUP {
				_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReloading)
				_ = d.Reload(ctx)
				_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
				continue
			}
			d.log.Info().Str("signal", s.String()).Msg("stopping: draining requests and hook calls")
			return d.stop()
		case <-tick:
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := d.readiness(cctx); err == nil {
				_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			} else {
				d.log.Warn().Err(err).Msg("not pinging the watchdog")
			}
			cancel()
		}
	}
}

func (d *Daemon) stop() error {
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.Shutdown(ctx)
}
