package client_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

func TestOnboardingStates(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			e := newEnv(t, v, "", sim.Config{ManualActivation: true}, false)
			ctx := context.Background()
			if _, err := e.cl.HPB(ctx); !protocol.HasCode(err, protocol.CodeInvalidUserOrState) {
				t.Fatalf("HPB before INI: %v", err)
			}
			if err := e.cl.INI(ctx); err != nil {
				t.Fatal(err)
			}
			if err := e.cl.INI(ctx); !protocol.HasCode(err, protocol.CodeInvalidUserState) {
				t.Fatalf("second INI: %v", err)
			}
			if err := e.cl.HIA(ctx); err != nil {
				t.Fatal(err)
			}
			if st := e.sim.State("PARTNER1", "USER1"); st != sim.StateInitialised {
				t.Fatalf("state %s", st)
			}
			// HPB waits for the bank's activation (091002 for the key
			// management request, as banks answer it); without the bank's
			// keys the client cannot send orders either.
			if _, err := e.cl.HPB(ctx); !protocol.HasCode(err, protocol.CodeInvalidUserOrState) {
				t.Fatalf("HPB before activation: %v", err)
			}
			if err := e.sim.Activate("PARTNER1", "USER1"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.cl.HPB(ctx); err != nil {
				t.Fatal(err)
			}
			if d, err := e.cl.Download(ctx, "hac", time.Time{}, time.Time{}); err != nil || d != nil {
				t.Fatalf("after activation: %v %v", d, err)
			}
			// Unknown subscriber.
			other := e.bank
			other.UserID = "NOBODY"
			cl, _ := client.New(other, e.keys, e.host, client.Options{})
			if err := cl.INI(ctx); !protocol.HasCode(err, protocol.CodeUserUnknown) {
				t.Fatalf("unknown user: %v", err)
			}
		})
	}
}

// An expired certificate is refused at INI with 091208.
func TestExpiredCertificate(t *testing.T) {
	e := newEnv(t, protocol.H005, "", sim.Config{}, false)
	ks, err := keys.Generate("PARTNER1", "USER1", keys.Options{SelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	old, err := keys.SelfSign(ks.Signature.Private, "expired", "", x509.KeyUsageDigitalSignature, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ks.Signature.Cert = old
	cl, _ := client.New(e.bank, ks, e.host, client.Options{})
	if err := cl.INI(context.Background()); !protocol.HasCode(err, protocol.CodeCertExpired) {
		t.Fatalf("want 091208, got %v", err)
	}
	if st := e.sim.State("PARTNER1", "USER1"); st != sim.StateNew {
		t.Fatalf("state %s", st)
	}
}
