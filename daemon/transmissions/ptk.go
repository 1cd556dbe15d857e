package transmissions

import "errors"

// parsePTK is wired to daemon/acks' PTK parser once it lands.
func (s *Service) parsePTK(bank string, data []byte) ([]finding, error) {
	return nil, errors.New("ptk: parser not wired yet")
}
