package atos

import "fmt"

// Platform URLs of the Sips 2.0 brands. The old *.sips-atos.com hosts were
// shut down in 2021. These defaults come from the brands' public
// documentation and sample code; a merchant whose bank gives other hosts
// sets paypage_url and office_url.
type platform struct{ paypage, office string }

var platforms = map[string]map[string]platform{
	"worldline": {
		"simulation": {"https://payment-webinit.simu.sips-services.com", "https://office-server.simu.sips-services.com"},
		"test":       {"https://payment-webinit.test.sips-services.com", "https://office-server.test.sips-services.com"},
		"production": {"https://payment-webinit.sips-services.com", "https://office-server.sips-services.com"},
	},
	"mercanet": {
		"simulation": {"https://payment-webinit.simu.mercanet.bnpparibas.net", "https://office-server.simu.mercanet.bnpparibas.net"},
		"test":       {"https://payment-webinit-mercanet.test.sips-services.com", "https://office-server-mercanet.test.sips-services.com"},
		"production": {"https://payment-webinit.mercanet.bnpparibas.net", "https://office-server.mercanet.bnpparibas.net"},
	},
	"sogenactif": {
		"simulation": {"https://payment-webinit.simu.sips-services.com", "https://office-server.simu.sips-services.com"},
		"test":       {"https://payment-webinit-sogenactif.test.sips-services.com", "https://office-server-sogenactif.test.sips-services.com"},
		"production": {"https://payment-webinit.sogenactif.com", "https://office-server.sogenactif.com"},
	},
	"sherlocks": {
		"simulation": {"https://payment-webinit.simu.sips-services.com", "https://office-server.simu.sips-services.com"},
		"test":       {"https://payment-webinit-sherlocks.test.sips-services.com", "https://office-server-sherlocks.test.sips-services.com"},
		"production": {"https://sherlocks-payment-webinit.secure.lcl.fr", "https://sherlocks-office-server.secure.lcl.fr"},
	},
	"scellius": {
		"simulation": {"https://payment-webinit.simu.sips-services.com", "https://office-server.simu.sips-services.com"},
		"test":       {"https://payment-webinit-scellius.test.sips-services.com", "https://office-server-scellius.test.sips-services.com"},
		"production": {"https://payment-webinit.scelliusnet.fr", "https://office-server.scelliusnet.fr"},
	},
}

// platformURLs returns the default base URLs of a brand and environment.
func platformURLs(brand, env string) (paypage, office string, err error) {
	b, ok := platforms[brand]
	if !ok {
		return "", "", fmt.Errorf("unknown brand %q (worldline, mercanet, sogenactif, sherlocks, scellius)", brand)
	}
	p, ok := b[env]
	if !ok {
		return "", "", fmt.Errorf("unknown environment %q (simulation, test, production)", env)
	}
	return p.paypage, p.office, nil
}
