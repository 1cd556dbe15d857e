// Package proto holds the plugin wire protocol (acquit.plugin.v1) and its
// generated Go code in acquit/plugin/v1.
//
// Regenerate with `go generate ./sdk/...`; it needs protoc, protoc-gen-go and
// protoc-gen-go-grpc on PATH.
package proto

//go:generate protoc -I . -I /usr/include --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative acquit/plugin/v1/plugin.proto
