package payments

import (
	"os"
	"syscall"
)

// crashAt is ACQUIT_CRASH_AT, read once: the name of a point in the code
// where the process kills itself with SIGKILL, exactly as `kill -9` would at
// that instant. It exists for the crash tests (e2e), which cannot time an
// outside kill -9 between two statements; it is never set in production.
var crashAt = os.Getenv("ACQUIT_CRASH_AT")

// crashPoint kills the process with SIGKILL when ACQUIT_CRASH_AT names
// point. Points: "after-start-commit" (a payment start committed, its
// answer not yet sent).
func crashPoint(point string) {
	if crashAt != "" && crashAt == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
