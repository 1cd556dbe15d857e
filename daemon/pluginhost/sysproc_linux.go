package pluginhost

import (
	"os/exec"
	"syscall"
)

// setProcAttr asks the kernel to kill the plugin when the daemon dies, even
// by SIGKILL, so that no orphan plugin keeps a bank session open.
//
// Pdeathsig fires when the thread that started the child exits; the Go
// runtime does not end threads unless a goroutine exits while locked to
// one, which this package never does.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
