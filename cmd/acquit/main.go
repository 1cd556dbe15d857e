// Command acquit is the acquit daemon and its command-line interface.
package main

import (
	"os"

	"github.com/acquit/acquit/daemon/cli"
)

func main() { os.Exit(cli.Main()) }
