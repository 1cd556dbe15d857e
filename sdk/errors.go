package sdk

import "errors"

// ErrUnsupported is returned when a plugin does not implement an optional
// call (RunJob on a plugin without jobs, a Keys operation it does not offer).
var ErrUnsupported = errors.New("not supported by the plugin")
