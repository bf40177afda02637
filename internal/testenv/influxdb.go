package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The time-series servers of `make services` (scripts/services/influxdb.sh
// and victoria-metrics.sh), as .services/env exports them:
//
//	MQTTPERSIST_INFLUXDB_URL                   http://127.0.0.1:18086 (InfluxDB 1.6: /write, /query)
//	MQTTPERSIST_INFLUXDB_UDP_ADDR              127.0.0.1:18089 (its UDP listener, into MQTTPERSIST_INFLUXDB_UDP_DATABASE)
//	MQTTPERSIST_INFLUXDB_OPENTSDB_ADDR         127.0.0.1:14242 (its OpenTSDB input, into MQTTPERSIST_INFLUXDB_OPENTSDB_DATABASE)
//	MQTTPERSIST_INFLUXDB_BIN                   /usr/bin/influxd (for StartInfluxDB)
//	MQTTPERSIST_VICTORIAMETRICS_URL            http://127.0.0.1:18428 (line protocol on /write and /api/v2/write)
//	MQTTPERSIST_VICTORIAMETRICS_OPENTSDB_ADDR  127.0.0.1:14243 (OpenTSDB telnet put and HTTP /api/put)
const (
	InfluxDBEnv                 = "MQTTPERSIST_INFLUXDB_URL"
	InfluxDBUDPEnv              = "MQTTPERSIST_INFLUXDB_UDP_ADDR"
	InfluxDBUDPDatabaseEnv      = "MQTTPERSIST_INFLUXDB_UDP_DATABASE"
	InfluxDBOpenTSDBEnv         = "MQTTPERSIST_INFLUXDB_OPENTSDB_ADDR"
	InfluxDBOpenTSDBDatabaseEnv = "MQTTPERSIST_INFLUXDB_OPENTSDB_DATABASE"
	InfluxDBBinEnv              = "MQTTPERSIST_INFLUXDB_BIN"
	VictoriaMetricsEnv          = "MQTTPERSIST_VICTORIAMETRICS_URL"
	VictoriaMetricsOpenTSDBEnv  = "MQTTPERSIST_VICTORIAMETRICS_OPENTSDB_ADDR"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

// httpURL returns the value of env, an http:// URL whose server answers
// GET path with a 2xx status, or ends the test through Unavailable.
func httpURL(t testing.TB, env, path string) string {
	t.Helper()
	v := strings.TrimSuffix(Getenv(t, env), "/")
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		t.Fatalf("testenv: %s=%q is not an http:// URL", env, v)
	}
	resp, err := httpClient.Get(v + path)
	if err != nil {
		Unavailable(t, env, "server unreachable: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		Unavailable(t, env, "GET %s: %s", path, resp.Status)
	}
	return v
}

// InfluxDBURL returns MQTTPERSIST_INFLUXDB_URL once the server answers
// /ping, or ends the test through Unavailable.
func InfluxDBURL(t testing.TB) string {
	t.Helper()
	return httpURL(t, InfluxDBEnv, "/ping")
}

// InfluxDBDatabase creates a fresh database on the InfluxDB at url (from
// InfluxDBURL or a StartInfluxDB server) and returns its name; it is
// dropped when the test ends.
func InfluxDBDatabase(t testing.TB, url string) string {
	t.Helper()
	name := freshName()
	InfluxQL(t, url, "", "CREATE DATABASE "+name)
	t.Cleanup(func() {
		if _, err := influxQL(url, "", "DROP DATABASE "+name); err != nil {
			t.Errorf("testenv: drop database %s on %s: %v", name, url, err)
		}
	})
	return name
}

// InfluxDBUDP returns the address of the InfluxDB UDP listener and the
// database it writes into, once the server answers.
func InfluxDBUDP(t testing.TB) (addr, db string) {
	t.Helper()
	InfluxDBURL(t)
	return Getenv(t, InfluxDBUDPEnv), Getenv(t, InfluxDBUDPDatabaseEnv)
}

// InfluxDBOpenTSDB returns the address of InfluxDB's OpenTSDB input
// (telnet put and HTTP /api/put) and the database it writes into, once it
// accepts connections.
func InfluxDBOpenTSDB(t testing.TB) (addr, db string) {
	t.Helper()
	InfluxDBURL(t)
	addr = Getenv(t, InfluxDBOpenTSDBEnv)
	reachable(t, InfluxDBOpenTSDBEnv, addr)
	return addr, Getenv(t, InfluxDBOpenTSDBDatabaseEnv)
}

// InfluxQL runs an InfluxQL statement on the InfluxDB at url in database
// db ("" for none) and fails the test on error. It returns the CSV answer
// (see InfluxRows).
func InfluxQL(t testing.TB, url, db, q string) []byte {
	t.Helper()
	b, err := influxQL(url, db, q)
	if err != nil {
		t.Fatalf("testenv: %s on %s: %v", q, url, err)
	}
	return b
}

func influxQL(base, db, q string) ([]byte, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// CSV keeps every byte of a string as stored (JSON would replace
	// invalid UTF-8).
	req.Header.Set("Accept", "application/csv")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if bytes.HasPrefix(b, []byte(`{"results"`)) && bytes.Contains(b, []byte(`"error"`)) {
		return nil, fmt.Errorf("%s", b)
	}
	if bytes.HasPrefix(b, []byte("error\n")) || bytes.HasPrefix(b, []byte("name,tags,error")) {
		return nil, fmt.Errorf("%s", b)
	}
	return b, nil
}

// InfluxRows runs a query on the InfluxDB at url in database db and
// returns its rows as maps from column name to the value's text, exactly
// as stored (the CSV answer, read byte for byte); "name" is the
// measurement and "time" the timestamp in nanoseconds. A column a row has
// no value in is left out of its map.
func InfluxRows(t testing.TB, url, db, q string) []map[string]string {
	t.Helper()
	records, err := readCSV(InfluxQL(t, url, db, q))
	if err != nil {
		t.Fatalf("testenv: %s on %s: reading the CSV answer: %v", q, url, err)
	}
	var out []map[string]string
	var cols []string
	for _, rec := range records {
		if len(rec) > 0 && rec[0] == "name" { // a header: a new series
			cols = rec
			continue
		}
		row := map[string]string{}
		for i, v := range rec {
			if i < len(cols) && v != "" {
				row[cols[i]] = v
			}
		}
		out = append(out, row)
	}
	return out
}

// readCSV reads RFC 4180 CSV as encoding/csv writes it, keeping every byte
// of a quoted field (encoding/csv's reader turns "\r\n" in one into "\n").
// Blank lines separate InfluxDB's statements and are skipped.
func readCSV(b []byte) ([][]string, error) {
	var out [][]string
	var rec []string
	var field []byte
	i := 0
	for i < len(b) {
		if b[i] == '"' {
			i++
			for {
				q := bytes.IndexByte(b[i:], '"')
				if q < 0 {
					return nil, fmt.Errorf("unterminated quoted field")
				}
				field = append(field, b[i:i+q]...)
				i += q + 1
				if i < len(b) && b[i] == '"' { // "" is a quote
					field = append(field, '"')
					i++
					continue
				}
				break
			}
		} else {
			j := i
			for j < len(b) && b[j] != ',' && b[j] != '\n' && !(b[j] == '\r' && j+1 < len(b) && b[j+1] == '\n') {
				j++
			}
			field = append(field, b[i:j]...)
			i = j
		}
		rec = append(rec, string(field))
		field = field[:0]
		switch {
		case i >= len(b):
		case b[i] == ',':
			i++
			continue
		case b[i] == '\r':
			i += 2
		default:
			i++
		}
		if !(len(rec) == 1 && rec[0] == "") {
			out = append(out, rec)
		}
		rec = nil
	}
	return out, nil
}

// VictoriaMetricsURL returns MQTTPERSIST_VICTORIAMETRICS_URL once the
// server answers /health, or ends the test through Unavailable.
func VictoriaMetricsURL(t testing.TB) string {
	t.Helper()
	return httpURL(t, VictoriaMetricsEnv, "/health")
}

// VictoriaMetricsOpenTSDB returns the address of VictoriaMetrics' OpenTSDB
// listener (telnet put and HTTP /api/put), once it accepts connections.
func VictoriaMetricsOpenTSDB(t testing.TB) string {
	t.Helper()
	VictoriaMetricsURL(t)
	addr := Getenv(t, VictoriaMetricsOpenTSDBEnv)
	reachable(t, VictoriaMetricsOpenTSDBEnv, addr)
	return addr
}

// Series is one time series read back from VictoriaMetrics: its labels
// (__name__ is the metric) and its samples.
type Series struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"` // milliseconds
}

// VictoriaMetricsExport returns the series matching the series selector
// match (such as {__name__=~"t_abc.*"}) on the VictoriaMetrics at url,
// from /api/v1/export, once they hold at least samples samples in all:
// VictoriaMetrics makes new samples searchable within about a second
// (after /internal/force_flush, which this asks for), so it polls for up
// to 10 s, and then returns what there is.
func VictoriaMetricsExport(t testing.TB, url, match string, samples int) []Series {
	t.Helper()
	return VictoriaMetricsExportSince(t, url, match, time.Time{}, samples)
}

// VictoriaMetricsExportSince is VictoriaMetricsExport of the samples at or
// after since only (all of them for the zero time).
func VictoriaMetricsExportSince(t testing.TB, url, match string, since time.Time, samples int) []Series {
	t.Helper()
	var out []Series
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out = vmExport(t, url, match, since)
		n := 0
		for _, s := range out {
			n += len(s.Values)
		}
		if n >= samples || time.Now().After(end) {
			return out
		}
	}
}

func vmExport(t testing.TB, url, match string, since time.Time) []Series {
	t.Helper()
	resp, err := httpClient.Get(url + "/internal/force_flush")
	if err != nil {
		t.Fatalf("testenv: force_flush on %s: %v", url, err)
	}
	resp.Body.Close()
	form := map[string][]string{"match[]": {match}}
	if !since.IsZero() {
		form["start"] = []string{strconv.FormatFloat(float64(since.UnixMilli())/1000, 'f', 3, 64)}
	}
	resp, err = httpClient.PostForm(url+"/api/v1/export", form)
	if err != nil {
		t.Fatalf("testenv: export %s from %s: %v", match, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("testenv: export %s from %s: %s %v: %s", match, url, resp.Status, err, body)
	}
	var out []Series
	for _, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var s Series
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("testenv: export from %s: %v in %s", url, err, line)
		}
		out = append(out, s)
	}
	return out
}

// StartInfluxDB starts an InfluxDB 1.x server of the test's own, the
// influxd that MQTTPERSIST_INFLUXDB_BIN names, with HTTP on a free
// loopback port (URL: http://127.0.0.1:PORT) and its data in a temporary
// directory, and returns once /ping answers. The test may Stop and Start
// it; what was written survives. Without the variable, or when the binary
// is missing, the test ends through Unavailable.
func StartInfluxDB(t testing.TB) *Server {
	t.Helper()
	return startInfluxDB(t, "", "")
}

// StartInfluxDBAuth is StartInfluxDB with authentication on: user (with
// password) is its admin, and URL carries the credentials
// (http://user:password@127.0.0.1:PORT), so that InfluxQL, InfluxRows
// and InfluxDBDatabase use them.
func StartInfluxDBAuth(t testing.TB, user, password string) *Server {
	t.Helper()
	return startInfluxDB(t, user, password)
}

func startInfluxDB(t testing.TB, user, password string) *Server {
	t.Helper()
	bin := Getenv(t, InfluxDBBinEnv)
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, InfluxDBBinEnv, "%v", err)
	}
	dir := t.TempDir()
	s := &Server{
		kind:       "influxdb",
		dir:        dir,
		logPath:    filepath.Join(dir, "influxd.log"),
		stopSignal: syscall.SIGTERM, // closes the shards and the WAL
		killSignal: syscall.SIGKILL,
	}
	t.Cleanup(func() { s.cleanup(t) })
	rpc, err := reservePort(t)
	if err != nil {
		t.Fatalf("testenv: influxdb: %v", err)
	}
	conf := filepath.Join(dir, "influxdb.conf")
	s.command = func() *exec.Cmd { return exec.Command(bin, "-config", conf) }
	ready := func(ctx context.Context) error { return influxPing(ctx, s.url) }
	s.firstStart(t, func(port int) {
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.url = "http://" + s.addr
		err := os.WriteFile(conf, []byte(strings.Join([]string{
			"# testenv.StartInfluxDB",
			"reporting-disabled = true",
			`bind-address = "127.0.0.1:` + strconv.Itoa(rpc) + `"`,
			"[meta]",
			`  dir = "` + filepath.Join(dir, "meta") + `"`,
			"  logging-enabled = false",
			"[data]",
			`  dir = "` + filepath.Join(dir, "data") + `"`,
			`  wal-dir = "` + filepath.Join(dir, "wal") + `"`,
			"  query-log-enabled = false",
			"[monitor]",
			"  store-enabled = false",
			"[subscriber]",
			"  enabled = false",
			"[continuous_queries]",
			"  enabled = false",
			"[http]",
			`  bind-address = "` + s.addr + `"`,
			"  log-enabled = false",
			"  auth-enabled = " + strconv.FormatBool(user != ""),
			"[logging]",
			`  level = "warn"`,
			"  suppress-logo = true",
			"",
		}, "\n")), 0o644)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}, ready)
	s.ready = ready
	if user != "" {
		// With no user yet, InfluxDB takes the admin's creation unauthenticated.
		InfluxQL(t, s.url, "", fmt.Sprintf("CREATE USER %q WITH PASSWORD '%s' WITH ALL PRIVILEGES", user, strings.ReplaceAll(password, "'", `\'`)))
		s.url = "http://" + url.UserPassword(user, password).String() + "@" + s.addr
	}
	return s
}

// influxPing wants 204 from GET /ping.
func influxPing(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("GET /ping: %s", resp.Status)
	}
	return nil
}
