// Package dsn converts database URLs, the one form this module's tools and
// tests pass around (flags, environment variables), into the connection
// strings that database drivers take.
//
// PostgreSQL drivers (pgx) accept postgres:// URLs as they are, so only MySQL
// needs a conversion: github.com/go-sql-driver/mysql takes its own DSN form,
// user:pass@tcp(host:port)/db?params.
package dsn

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/mqttpersist/mqttpersist/persist"
)

// MySQL converts a URL of the form
//
//	mysql://user:pass@host:port/db?param=value&...
//
// into a DSN for github.com/go-sql-driver/mysql. The scheme may also be
// mariadb. User and password are percent-decoded (write a password holding
// "@", ":", "/", "?" or "#" percent-encoded). The port defaults to 3306.
// Query parameters are the driver's DSN parameters (timeout, tls, loc, ...;
// unknown names are session variables, as in the driver); parseTime=true is
// added unless the URL sets parseTime.
//
// Errors name the URL redacted by persist.Redact.
func MySQL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("dsn: bad MySQL URL %q: %v", persist.Redact(rawURL), unwrapURLError(err))
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("dsn: bad MySQL URL %q: %s", persist.Redact(rawURL), fmt.Sprintf(format, args...))
	}
	switch u.Scheme {
	case "mysql", "mariadb":
	case "":
		return "", bad("no scheme (want mysql://user:pass@host:port/db)")
	default:
		return "", bad("scheme %q (want mysql or mariadb)", u.Scheme)
	}
	if u.Opaque != "" {
		return "", bad("want mysql://user:pass@host:port/db")
	}
	host := u.Hostname()
	if host == "" {
		return "", bad("missing host")
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	db := strings.TrimPrefix(u.Path, "/")
	if strings.Contains(db, "/") {
		return "", bad("database name %q contains '/'", db)
	}
	if u.Fragment != "" {
		return "", bad("unexpected fragment #%s", u.Fragment)
	}
	query := u.Query()
	// Let the driver parse the parameters, so its own validation and
	// defaults apply; user, password and database are set afterwards because
	// the DSN syntax cannot carry every character they may hold.
	cfg, err := mysql.ParseDSN("tcp(" + net.JoinHostPort(host, port) + ")/?" + query.Encode())
	if err != nil {
		return "", bad("%v", err)
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		if strings.Contains(cfg.User, ":") {
			return "", bad("user name contains ':', which a MySQL DSN cannot hold")
		}
	}
	cfg.DBName = db
	if !query.Has("parseTime") {
		cfg.ParseTime = true
	}
	return cfg.FormatDSN(), nil
}

// unwrapURLError drops url.Error's own copy of the URL (it holds the password).
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
