// Package configs holds the shipped configuration files: the production
// template (acquit.yaml), the local configuration `acquit init` writes
// (local.yaml) and the systemd unit (acquit.service).
package configs

import _ "embed"

// Local is configs/local.yaml, the configuration `acquit init` writes.
//
//go:embed local.yaml
var Local []byte
