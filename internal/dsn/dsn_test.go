package dsn

import (
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestMySQL(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"plain", "mysql://mqtt:mqtt@127.0.0.1:53306/mqtt",
			"mqtt:mqtt@tcp(127.0.0.1:53306)/mqtt?parseTime=true"},
		{"mariadb scheme", "mariadb://u:p@db.example:3307/x",
			"u:p@tcp(db.example:3307)/x?parseTime=true"},
		{"default port", "mysql://u:p@localhost/db",
			"u:p@tcp(localhost:3306)/db?parseTime=true"},
		{"no password", "mysql://root@127.0.0.1:3306/db",
			"root@tcp(127.0.0.1:3306)/db?parseTime=true"},
		{"no user", "mysql://127.0.0.1:3306/db",
			"tcp(127.0.0.1:3306)/db?parseTime=true"},
		{"no database", "mysql://u:p@h:1/",
			"u:p@tcp(h:1)/?parseTime=true"},
		{"ipv6", "mysql://u:p@[::1]:53306/db",
			"u:p@tcp([::1]:53306)/db?parseTime=true"},
		{"driver params", "mysql://u:p@h:1/db?timeout=5s&loc=Local&tls=skip-verify",
			"u:p@tcp(h:1)/db?loc=Local&parseTime=true&timeout=5s&tls=skip-verify"},
		{"parseTime off", "mysql://u:p@h:1/db?parseTime=false",
			"u:p@tcp(h:1)/db"},
		{"session variable", "mysql://u:p@h:1/db?sql_mode=%27ANSI_QUOTES%27",
			"u:p@tcp(h:1)/db?parseTime=true&sql_mode=%27ANSI_QUOTES%27"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MySQL(tt.url)
			if err != nil {
				t.Fatalf("MySQL(%q): %v", tt.url, err)
			}
			if got != tt.want {
				t.Errorf("MySQL(%q)\n got %q\nwant %q", tt.url, got, tt.want)
			}
			if _, err := mysql.ParseDSN(got); err != nil {
				t.Errorf("driver rejects %q: %v", got, err)
			}
		})
	}
}

// The driver must read back exactly the user, password and database the URL
// held, whatever characters they contain.
func TestMySQLSpecialCharacters(t *testing.T) {
	tests := []struct {
		name, url, user, pass, db string
	}{
		{"at colon slash", "mysql://u:p%40ss%3Aw%2Frd@h:1/db", "u", "p@ss:w/rd", "db"},
		{"query and fragment chars", "mysql://u:a%3Fb%23c%26d%3De@h:1/db", "u", "a?b#c&d=e", "db"},
		{"parens and spaces", "mysql://u:%28x%29%20y@h:1/db", "u", "(x) y", "db"},
		{"percent and plus", "mysql://u:100%25+1@h:1/db", "u", "100%+1", "db"},
		{"unicode", "mysql://%C3%BCser:p%C3%A4ss@h:1/d%C3%A9", "üser", "päss", "dé"},
		{"quote and backslash", "mysql://u:%27%22%5C@h:1/db", "u", `'"\`, "db"},
		{"at in user", "mysql://a%40b:p@h:1/db", "a@b", "p", "db"},
		{"empty password", "mysql://u:@h:1/db", "u", "", "db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MySQL(tt.url)
			if err != nil {
				t.Fatalf("MySQL(%q): %v", tt.url, err)
			}
			cfg, err := mysql.ParseDSN(got)
			if err != nil {
				t.Fatalf("driver rejects %q: %v", got, err)
			}
			if cfg.User != tt.user || cfg.Passwd != tt.pass || cfg.DBName != tt.db {
				t.Errorf("MySQL(%q) = %q: driver reads user %q password %q db %q, want %q %q %q",
					tt.url, got, cfg.User, cfg.Passwd, cfg.DBName, tt.user, tt.pass, tt.db)
			}
			if cfg.Net != "tcp" || cfg.Addr != "h:1" || !cfg.ParseTime {
				t.Errorf("MySQL(%q) = %q: net %q addr %q parseTime %v", tt.url, got, cfg.Net, cfg.Addr, cfg.ParseTime)
			}
		})
	}
}

func TestMySQLErrors(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"bad scheme", "postgres://u:secret@h:1/db", `scheme "postgres"`},
		{"no scheme", "u:secret@h:1/db", "bad MySQL URL"},
		{"driver DSN given", "u:secret@tcp(h:1)/db", "bad MySQL URL"},
		{"missing host", "mysql://u:secret@/db", "missing host"},
		{"missing host with port", "mysql://u:secret@:3306/db", "missing host"},
		{"empty", "", "no scheme"},
		{"slash in db", "mysql://u:secret@h:1/a/b", `database name "a/b"`},
		{"bad port", "mysql://u:secret@h:port/db", "bad MySQL URL"},
		{"bad escape", "mysql://u:sec%zzret@h:1/db", "bad MySQL URL"},
		{"unescaped hash in password", "mysql://u:sec#ret@h:1/db", "bad MySQL URL"},
		{"bad driver param", "mysql://u:secret@h:1/db?timeout=soon", "bad MySQL URL"},
		{"colon in user", "mysql://a%3Ab:secret@h:1/db", "user name contains ':'"},
		{"opaque", "mysql:u@h", "want mysql://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MySQL(tt.url)
			if err == nil {
				t.Fatalf("MySQL(%q) = %q, want an error", tt.url, got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("MySQL(%q) error %q does not contain %q", tt.url, msg, tt.want)
			}
			if strings.Contains(msg, "secret") || strings.Contains(msg, "sec#ret") {
				t.Errorf("MySQL(%q) error %q shows the password", tt.url, msg)
			}
		})
	}
}
