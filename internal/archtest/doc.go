// Package archtest holds no code: its tests enforce the module's package
// boundaries with `go list -deps` (the production binary carries no bank
// simulator; plugins import nothing from the daemon).
package archtest
