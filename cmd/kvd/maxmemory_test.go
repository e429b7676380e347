package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// kvdMainEnv makes TestKvdMainHelper run main with the arguments after "--":
// the test binary doubles as kvd.
const kvdMainEnv = "KVD_TEST_RUN_MAIN"

// TestKvdMainHelper is not a test: run by TestMaxMemoryFlagRefusesBadSizes
// in a child process, it runs kvd's main.
func TestKvdMainHelper(t *testing.T) {
	if os.Getenv(kvdMainEnv) != "1" {
		return
	}
	for i, a := range os.Args {
		if a == "--" {
			os.Args = append([]string{"kvd"}, os.Args[i+1:]...)
			break
		}
	}
	main()
}

// TestMaxMemoryFlagRefusesBadSizes runs kvd with sizes it must refuse: it
// must say why and exit with status 2, before listening.
func TestMaxMemoryFlagRefusesBadSizes(t *testing.T) {
	for _, size := range []string{"12MB", "-1", "1.5GiB", "lots"} {
		// A kvd that accepted the size would serve until killed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKvdMainHelper$", "--", "-addr", "127.0.0.1:0", "-maxmemory", size)
		cmd.Env = append(os.Environ(), kvdMainEnv+"=1")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("kvd -maxmemory %s: %v, want exit status 2; output:\n%s", size, err, out)
			continue
		}
		if want := `invalid value "` + size + `" for flag -maxmemory`; !strings.Contains(string(out), want) {
			t.Errorf("kvd -maxmemory %s says:\n%s\nwant it to contain %q", size, out, want)
		}
	}
}
