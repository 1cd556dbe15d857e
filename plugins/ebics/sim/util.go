package sim

import (
	"encoding/base64"

	"github.com/beevik/etree"
)

type etreeDoc = etree.Document

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
