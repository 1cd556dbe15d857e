package plugintest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// brokenEnv carries the broken variant a child process of CheckBroken runs.
const brokenEnv = "PLUGINTEST_BROKEN_VARIANT"

// BrokenVariant names the deliberately broken variant of the plugin this
// test process must run the kit on, or is "" in an ordinary run. See
// CheckBroken.
func BrokenVariant() string { return os.Getenv(brokenEnv) }

// brokenCancelWait bounds checkCancellation's waits in a CheckBroken
// child, where a check is expected to time out.
const brokenCancelWait = 2 * time.Second

// CheckBroken shows that the checks a plugin's configuration of the kit
// enables can fail. variants maps the name of a deliberately broken
// variant of the plugin to the one check it must fail. For each, the
// calling top-level test is run again in a child process where
// BrokenVariant returns the name; the test must then run the kit
// (RunGateway or RunTransport, directly in the test) on that variant and
// return. CheckBroken fails unless the child fails exactly that check:
//
//	func TestConformance(t *testing.T) {
//		if v := plugintest.BrokenVariant(); v != "" {
//			plugintest.RunGateway(t, brokenFactory(v), opts)
//			return
//		}
//		plugintest.RunGateway(t, factory, opts)
//		plugintest.CheckBroken(t, map[string]string{"ignores-ctx": "ContextCancellation"})
//	}
func CheckBroken(t *testing.T, variants map[string]string) {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	failRE := regexp.MustCompile(`--- FAIL: ` + regexp.QuoteMeta(top) + `/(\w+)`)
	for name, check := range variants {
		t.Run("broken/"+name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(top)+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the kit passed variant %s, which breaks %s:\n%s", name, check, out)
			}
			var failed []string
			for _, m := range failRE.FindAllStringSubmatch(string(out), -1) {
				failed = append(failed, m[1])
			}
			if len(failed) != 1 || failed[0] != check {
				t.Fatalf("variant %s failed checks %v, want exactly [%s]:\n%s", name, failed, check, out)
			}
		})
	}
}
