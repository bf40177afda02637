package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// constant is a backend that is always there and opens to value.
func constant(name, value string) Backend[string] {
	return Backend[string]{Name: name, Open: func(testing.TB) string { return value }}
}

func TestEachBackend(t *testing.T) {
	var opened, ran []string
	backends := []Backend[string]{
		{Name: "a", Open: func(t testing.TB) string { opened = append(opened, t.Name()); return "va" }},
		{Name: "b", Open: func(t testing.TB) string { opened = append(opened, t.Name()); return "vb" }},
		{Name: "c", Open: func(t testing.TB) string { opened = append(opened, t.Name()); return "vc" }},
	}
	EachBackend(t, backends, func(t *testing.T, v string) {
		ran = append(ran, t.Name()+"="+v)
	})
	// Serial subtests have all run when EachBackend returns.
	if want := []string{"TestEachBackend/a=va", "TestEachBackend/b=vb", "TestEachBackend/c=vc"}; !slices.Equal(ran, want) {
		t.Errorf("fn ran as %q, want %q", ran, want)
	}
	if want := []string{"TestEachBackend/a", "TestEachBackend/b", "TestEachBackend/c"}; !slices.Equal(opened, want) {
		t.Errorf("Open ran in %q, want once in each subtest %q", opened, want)
	}
}

// Two backends, since go test runs at most -parallel (GOMAXPROCS) parallel
// subtests at a time.
func TestEachBackendParallel(t *testing.T) {
	const n = 2
	var (
		mu      sync.Mutex
		ran     []string
		arrived sync.WaitGroup
		all     = make(chan struct{})
	)
	arrived.Add(n)
	go func() { arrived.Wait(); close(all) }()
	var backends []Backend[string]
	for _, name := range []string{"a", "b"} {
		backends = append(backends, Backend[string]{Name: name, Open: func(t testing.TB) string {
			// Each Open waits for the other: both only arrive when the
			// subtests run at the same time.
			arrived.Done()
			select {
			case <-all:
			case <-time.After(30 * time.Second):
				t.Errorf("%s: the other backend's subtest did not run meanwhile", t.Name())
			}
			return "v" + name
		}})
	}
	t.Run("group", func(t *testing.T) {
		EachBackendParallel(t, backends, func(t *testing.T, v string) {
			mu.Lock()
			ran = append(ran, t.Name()+"="+v)
			mu.Unlock()
		})
	})
	slices.Sort(ran)
	if want := []string{"TestEachBackendParallel/group/a=va", "TestEachBackendParallel/group/b=vb"}; !slices.Equal(ran, want) {
		t.Errorf("fn ran as %q, want %q", ran, want)
	}
}

func TestMap(t *testing.T) {
	var ran []string
	base := []Backend[string]{constant("x", "1"), constant("y", "2")}
	mapped := Map(base, func(t testing.TB, name, v string) []string {
		return []string{t.Name(), name, v}
	})
	if len(mapped) != 2 || mapped[0].Name != "x" || mapped[1].Name != "y" {
		t.Fatalf("Map gave backends %+v, want x and y", mapped)
	}
	EachBackend(t, mapped, func(t *testing.T, v []string) {
		ran = append(ran, strings.Join(v, " "))
	})
	if want := []string{"TestMap/x x 1", "TestMap/y y 2"}; !slices.Equal(ran, want) {
		t.Errorf("mapped Open gave %q, want %q", ran, want)
	}
}

func TestSQLBackends(t *testing.T) {
	var names []string
	for _, b := range SQLBackends() {
		names = append(names, b.Name)
	}
	if want := []string{"sqlite", "postgres", "mysql"}; !slices.Equal(names, want) {
		t.Fatalf("SQLBackends are %q, want %q", names, want)
	}
	EachBackend(t, SQLBackends(), func(t *testing.T, url string) {
		name := strings.TrimPrefix(t.Name(), "TestSQLBackends/")
		if !strings.HasPrefix(url, name+"://") {
			t.Errorf("URL %q is not a %s:// URL", url, name)
		}
		if name == "sqlite" {
			dir := filepath.Dir(strings.TrimPrefix(url, "sqlite://"))
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				t.Errorf("SQLite database %q is not in a temporary directory: %v", url, err)
			}
		} else if db := dbName(t, url); !strings.HasPrefix(db, "t_") {
			t.Errorf("URL %q is not of a fresh database", url)
		}
	})
}

// helperEnv names the mode in which TestEachBackendHelperProcess runs its
// backends, when TestEachBackendMissingServer starts the test binary
// again; unset, it does nothing.
const helperEnv = "MQTTPERSIST_TESTENV_EACH_BACKEND"

// TestEachBackendHelperProcess runs, in a test process of its own, a
// backend whose server is missing between two that are there.
func TestEachBackendHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // not started by TestEachBackendMissingServer
	}
	backends := []Backend[string]{
		constant("before", "1"),
		{Name: "postgres", Open: PostgresURL},
		constant("after", "2"),
	}
	fn := func(t *testing.T, v string) { t.Logf("ran %s", t.Name()) }
	if mode == "parallel" {
		EachBackendParallel(t, backends, fn)
	} else {
		EachBackend(t, backends, fn)
	}
}

// A missing server fails its backend's subtest when servers are required
// and skips it with the setup command otherwise; the other backends run
// either way. The subtest's end can only be seen from outside its test
// process.
func TestEachBackendMissingServer(t *testing.T) {
	const sub = "TestEachBackendHelperProcess/"
	for _, mode := range []string{"serial", "parallel"} {
		for _, required := range []bool{false, true} {
			name := mode + "/not required"
			if required {
				name = mode + "/required"
			}
			t.Run(name, func(t *testing.T) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestEachBackendHelperProcess$", "-test.v", "-test.count=1")
				var env []string
				for _, kv := range os.Environ() {
					k, _, _ := strings.Cut(kv, "=")
					if k != "CI" && k != RequireEnv && k != PostgresEnv && k != helperEnv {
						env = append(env, kv)
					}
				}
				req := "0"
				if required {
					req = "1"
				}
				cmd.Env = append(env, helperEnv+"="+mode, RequireEnv+"="+req, PostgresEnv+"=")
				outb, err := cmd.CombinedOutput()
				out := string(outb)
				var exit *exec.ExitError
				switch {
				case required && !errors.As(err, &exit):
					t.Errorf("test process ended with %v, want a failure", err)
				case !required && err != nil:
					t.Errorf("test process ended with %v, want success", err)
				}
				wants := []string{
					"--- PASS: " + sub + "before", "--- PASS: " + sub + "after",
					"ran " + sub + "before", "ran " + sub + "after",
					PostgresEnv, "make services",
				}
				if required {
					wants = append(wants, "--- FAIL: "+sub+"postgres", "servers are required")
				} else {
					wants = append(wants, "--- SKIP: "+sub+"postgres")
				}
				for _, want := range wants {
					if !strings.Contains(out, want) {
						t.Errorf("output does not show %q:\n%s", want, out)
					}
				}
				if strings.Contains(out, "ran "+sub+"postgres") {
					t.Errorf("fn ran for the missing server:\n%s", out)
				}
			})
		}
	}
}
